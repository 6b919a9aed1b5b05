import CJavaScriptCore
import HeraldApplication
import HeraldEvents
import HeraldSchema
import HeraldStorage

extension Engine {
    /// `$.broadcastEvent(type, message [, authenticatedUsers = true [, anonymousUsers = false]])`.
    func broadcastEvent(_ args: [JSValueRef]) throws -> JSValueRef {
        let job = try currentJob()
        let (type, data) = try eventTypeAndMessage(args, function: "broadcastEvent")
        let authenticated = try flag(args, 2, name: "authenticatedUsers", default: true)
        let anonymous = try flag(args, 3, name: "anonymousUsers", default: false)
        guard authenticated || anonymous else { return undefined }
        try job.work.raise(type: type, data: data, to: .broadcast(authenticated: authenticated, anonymous: anonymous))
        return undefined
    }

    /// `$.sendEvent(type, message, recipients)`: users and groups (nested, each user once).
    /// True when at least one open stream will receive it.
    func sendEvent(_ args: [JSValueRef]) throws -> JSValueRef {
        let job = try currentJob()
        let (type, data) = try eventTypeAndMessage(args, function: "sendEvent")
        guard args.count >= 3 else {
            throw JSThrow(message: "sendEvent expects recipients: a User, a Group or a list", kind: "TypeError")
        }
        var roots: [EntityReference] = []
        for value in elements(args[2]) where !JSValueIsNull(context, value) && !JSValueIsUndefined(context, value) {
            guard let object = JSValueToObject(context, value, nil),
                let reference = EntityObject.reference(context, object),
                reference.type == BuiltInType.user || reference.type == BuiltInType.group
            else {
                throw JSThrow(message: "sendEvent recipients are Users, Groups or lists of them", kind: "TypeError")
            }
            roots.append(reference)
        }
        let users = try job.work.users(in: roots)
        guard !users.isEmpty else { return JSValueMakeBoolean(context, false) }
        try job.work.raise(type: type, data: data, to: .users(users))
        return JSValueMakeBoolean(context, try job.work.hasStreams(forAnyOf: users))
    }

    /// `$.publish(channel, type, message)`: every stream subscribed to the channel. The channel
    /// must match a pattern of `channels.json`.
    func publish(_ args: [JSValueRef]) throws -> JSValueRef {
        let job = try currentJob()
        guard let first = args.first, JSValueIsString(context, first) else {
            throw JSThrow(message: "publish expects a channel, an event type and a message", kind: "TypeError")
        }
        let channel = swiftString(first)
        guard ChannelRule.isChannelName(channel) else {
            throw JSThrow(
                message: "publish: '\(channel)' is not a channel name (1 to 128 letters, digits and :_-./@)",
                kind: "TypeError"
            )
        }
        guard job.work.model.schema.channels.rule(for: channel) != nil else {
            throw JSThrow(
                message: "publish: no pattern in schema/channels.json matches the channel '\(channel)'",
                kind: "TypeError"
            )
        }
        let (type, data) = try eventTypeAndMessage(Array(args.dropFirst()), function: "publish")
        try job.work.raise(type: type, data: data, to: .channel(channel))
        return undefined
    }

    func eventTypeAndMessage(_ args: [JSValueRef], function: String) throws -> (String, String) {
        guard args.count >= 2, JSValueIsString(context, args[0]) else {
            throw JSThrow(message: "\(function) expects an event type and a message", kind: "TypeError")
        }
        let type = swiftString(args[0])
        guard ServerEvent.isValidType(type) else {
            throw JSThrow(
                message: "\(function): the event type must be non-empty and contain no line breaks",
                kind: "TypeError"
            )
        }
        let message = args[1]
        guard JSValueIsString(context, message) else { return (type, try resultJSON(message).jsonString) }
        let text = swiftString(message)
        // The event log stores text through SQLite's C interface, which ends it at U+0000.
        guard !text.utf8.contains(0), !type.utf8.contains(0) else {
            throw JSThrow(message: "\(function): the event must not contain U+0000", kind: "TypeError")
        }
        return (type, text)
    }

    func flag(_ args: [JSValueRef], _ index: Int, name: String, default value: Bool) throws -> Bool {
        guard index < args.count, !JSValueIsUndefined(context, args[index]) else { return value }
        guard JSValueIsBoolean(context, args[index]) else {
            throw JSThrow(message: "broadcastEvent: \(name) must be true or false", kind: "TypeError")
        }
        return JSValueToBoolean(context, args[index])
    }
}
