import CJavaScriptCore
import HeraldApplication
import HeraldSchema
import HeraldStorage

extension Engine {
    /// The JavaScript value of a property value: Dates for dates, parsed objects for JSON.
    func jsValue(_ value: JSONValue, type: PropertyType? = nil) -> JSValueRef {
        switch value {
        case .null: return null
        case .bool(let b): return JSValueMakeBoolean(context, b)
        case .int(let i): return JSValueMakeNumber(context, Double(i))
        case .double(let d): return JSValueMakeNumber(context, d)
        case .string(let s):
            if case .date? = type, let t = Timestamp(iso8601: s) {
                var argument: [JSValueRef?] = [JSValueMakeNumber(context, Double(t.millisecondsSince1970))]
                return JSObjectMakeDate(context, 1, &argument, nil) ?? string(s)
            }
            return string(s)
        case .array, .object:
            let json = JSStringCreateWithUTF8CString(value.jsonString)
            defer { JSStringRelease(json) }
            return JSValueMakeFromJSONString(context, json) ?? null
        }
    }

    /// The JSON form of a JavaScript value. Entities become their ids, Dates ISO 8601 strings,
    /// functions and undefined become null; cycles stop at a fixed depth.
    func jsonValue(_ value: JSValueRef?, depth: Int = 0) throws(JSThrow) -> JSONValue {
        guard let value, depth < 64 else {
            if depth >= 64 { throw JSThrow(message: "value nested too deeply (or cyclic)", kind: "TypeError") }
            return .null
        }
        switch JSValueGetType(context, value) {
        case kJSTypeUndefined, kJSTypeNull: return .null
        case kJSTypeBoolean: return .bool(JSValueToBoolean(context, value))
        case kJSTypeNumber:
            let d = JSValueToNumber(context, value, nil)
            if d.rounded() == d, abs(d) < 9.0e15 { return .int(Int64(d)) }
            return d.isFinite ? .double(d) : .null
        case kJSTypeString: return .string(swiftString(value))
        case kJSTypeObject:
            let object = JSValueToObject(context, value, nil)!
            if let entity = EntityObject.reference(context, object) { return .string(entity.id) }
            if JSValueIsDate(context, value) {
                guard let ms = Engine.int(JSValueToNumber(context, value, nil)),
                    Timestamp.representableRange.contains(Int64(ms))
                else { return .null }
                return .string(Timestamp(millisecondsSince1970: Int64(ms)).iso8601)
            }
            if JSObjectIsFunction(context, object) { return .null }
            if JSValueIsArray(context, value) {
                var elements: [JSONValue] = []
                for i in 0..<length(of: object) {
                    if i % 1024 == 0 { try checkDeadline() }
                    elements.append(
                        try jsonValue(JSObjectGetPropertyAtIndex(context, object, UInt32(i), nil), depth: depth + 1)
                    )
                }
                return .array(elements)
            }
            let names = JSObjectCopyPropertyNames(context, object)!
            defer { JSPropertyNameArrayRelease(names) }
            var result = JSONObject()
            for i in 0..<JSPropertyNameArrayGetCount(names) {
                if i % 1024 == 0 { try checkDeadline() }
                let name = JSPropertyNameArrayGetNameAtIndex(names, i)!
                let key = Engine.swiftString(name)
                let element = JSObjectGetProperty(context, object, name, nil)
                if let element, JSValueIsObject(context, element),
                    let o = JSValueToObject(context, element, nil), JSObjectIsFunction(context, o)
                {
                    continue
                }
                result[key] = try jsonValue(element, depth: depth + 1)
            }
            return .object(result)
        default:
            return .null
        }
    }

    /// A JavaScript array of the given values.
    func jsArray(_ values: [JSValueRef]) -> JSValueRef {
        var values: [JSValueRef?] = values
        return JSObjectMakeArray(context, values.count, &values, nil) ?? null
    }

    /// The elements of a JavaScript array, or the value itself when it is not one.
    func elements(_ value: JSValueRef) -> [JSValueRef] {
        guard JSValueIsArray(context, value), let object = JSValueToObject(context, value, nil) else { return [value] }
        var values: [JSValueRef] = []
        for index in 0..<length(of: object) {
            // Past the deadline the list is cut short; the host call then fails as stopped.
            if index % 1024 == 0, (try? checkDeadline()) == nil { break }
            if let value = JSObjectGetPropertyAtIndex(context, object, UInt32(index), nil) { values.append(value) }
        }
        return values
    }

    /// An array's `length`, 0 when it is not a usable count (a proxy may answer anything).
    func length(of object: JSObjectRef) -> Int {
        guard let value = property(object, "length"), let length = Engine.int(JSValueToNumber(context, value, nil))
        else { return 0 }
        return min(max(0, length), Int(UInt32.max))
    }
}
