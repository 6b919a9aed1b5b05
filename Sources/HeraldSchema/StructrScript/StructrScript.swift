import Foundation

/// StructrScript, Structr's older expression language (`${ ... }`), translated to JavaScript.
///
/// Supported: function calls, string/number/boolean/null literals, dot access, the keywords
/// `this`, `me`, `now`, `data`, `request`, the `$` functions and `if`, `is`, `each`, `equal`,
/// `concat`, `empty`, `and`, `or`, `not`. The translation runs on the same engine as JavaScript;
/// unknown functions and syntax errors are reported with their position when the file loads.
public enum StructrScript {
    /// A syntax or name error at a 1-based line and column of the expression.
    public struct Error: Swift.Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public var line: Int
        public var column: Int

        public var description: String { "line \(line), column \(column): \(message)" }
    }

    /// Functions of `$` callable by name.
    public static let apiFunctions: Set<String> = [
        "find", "first", "size", "create", "getOrCreate", "delete", "set", "get", "log", "error", "assert",
        "store", "retrieve", "broadcastEvent", "sendEvent",
    ]

    /// The language's own constructs.
    public static let builtIns: Set<String> = ["if", "is", "each", "equal", "concat", "empty", "and", "or", "not"]

    /// The expression inside `${ ... }`, if `source` is a whole StructrScript file.
    public static func expression(in source: String) -> Substring? {
        let trimmed = source.trimmingWhitespace
        guard trimmed.hasPrefix("${"), trimmed.hasSuffix("}") else { return nil }
        return trimmed.dropFirst(2).dropLast()
    }

    /// Where an error in the expression of a `${ ... }` file stands in the file itself.
    public static func filePosition(of error: Error, in source: String) -> (line: Int, column: Int) {
        guard let start = source.range(of: "${")?.upperBound else { return (error.line, error.column) }
        let before = source[..<start]
        let startLine = before.filter { $0 == "\n" }.count + 1
        let startColumn =
            before.count
            - (before.lastIndex(of: "\n").map { before.distance(from: before.startIndex, to: $0) + 1 } ?? 0) + 1
        return error.line == 1
            ? (startLine, startColumn + error.column - 1) : (startLine + error.line - 1, error.column)
    }

    /// The JavaScript expression equivalent to a StructrScript expression.
    public static func translate(_ expression: some StringProtocol) throws(Error) -> String {
        var lexer = Lexer(String(expression))
        var parser = Parser(tokens: try lexer.tokens())
        let node = try parser.parseExpression()
        guard parser.peek.kind == .end else {
            throw Error(message: "unexpected '\(parser.peek.text)'", line: parser.peek.line, column: parser.peek.column)
        }
        return "(function (data) { return " + (try emit(node, insideEach: false)) + "; })($.data)"
    }

    indirect enum Node {
        case string(String)
        case number(String)
        case literal(String)
        case name(String, Token)
        case call(String, [Node], Token)
        case member(Node, String)
    }

    static func emit(_ node: Node, insideEach: Bool) throws(Error) -> String {
        switch node {
        case .string(let s): return JSONValue.string(s).jsonString
        case .number(let n): return n
        case .literal(let l): return l
        case .name(let name, let token):
            switch name {
            case "this", "me", "now", "request": return "$.\(name)"
            case "data": return "data"
            default: throw Error(message: "unknown name '\(name)'", line: token.line, column: token.column)
            }
        case .member(let base, let name):
            return "(\(try emit(base, insideEach: insideEach)))?.\(name)"
        case .call(let name, let arguments, let token):
            var args: [String] = []
            for argument in arguments { args.append(try emit(argument, insideEach: insideEach)) }
            func arity(_ range: ClosedRange<Int>) throws(Error) {
                guard range.contains(args.count) else {
                    throw Error(
                        message:
                            "\(name) takes \(range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)") arguments, got \(args.count)",
                        line: token.line,
                        column: token.column
                    )
                }
            }
            switch name {
            case "if":
                try arity(2...3)
                return "(__structrScript.truthy(\(args[0])) ? (\(args[1])) : (\(args.count > 2 ? args[2] : "null")))"
            case "is":
                try arity(2...2)
                return "(__structrScript.truthy(\(args[0])) ? (\(args[1])) : null)"
            case "each":
                try arity(2...2)
                return "__structrScript.each(\(args[0]), (data) => (\(args[1])))"
            case "equal", "concat", "empty", "and", "or", "not":
                return "__structrScript.\(name)(\(args.joined(separator: ", ")))"
            default:
                let camel = camelCase(name)
                guard apiFunctions.contains(camel) else {
                    throw Error(message: "unknown function '\(name)'", line: token.line, column: token.column)
                }
                return "$.\(camel)(\(args.joined(separator: ", ")))"
            }
        }
    }

    /// `broadcast_event` → `broadcastEvent`.
    static func camelCase(_ name: String) -> String {
        var out = ""
        var upper = false
        for c in name {
            if c == "_" {
                upper = true
            } else {
                out.append(upper ? Character(c.uppercased()) : c)
                upper = false
            }
        }
        return out
    }

    struct Token {
        enum Kind { case identifier, string, number, open, close, comma, dot, end }
        var kind: Kind
        var text: String
        var line: Int
        var column: Int
    }

    struct Lexer {
        let characters: [Character]
        var index = 0
        var line = 1
        var column = 1

        init(_ text: String) { characters = Array(text) }

        mutating func advance() {
            if characters[index] == "\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
            index += 1
        }

        mutating func tokens() throws(Error) -> [Token] {
            var tokens: [Token] = []
            while index < characters.count {
                let c = characters[index]
                let (startLine, startColumn) = (line, column)
                if c.isWhitespace {
                    advance()
                } else if c.isLetter || c == "_" {
                    var text = ""
                    while index < characters.count,
                        characters[index].isLetter || characters[index].isNumber || characters[index] == "_"
                    {
                        text.append(characters[index])
                        advance()
                    }
                    tokens.append(Token(kind: .identifier, text: text, line: startLine, column: startColumn))
                } else if c.isNumber || (c == "-" && index + 1 < characters.count && characters[index + 1].isNumber) {
                    var text = String(c)
                    advance()
                    while index < characters.count, characters[index].isNumber || characters[index] == "." {
                        text.append(characters[index])
                        advance()
                    }
                    guard Double(text) != nil else {
                        throw Error(message: "invalid number '\(text)'", line: startLine, column: startColumn)
                    }
                    tokens.append(Token(kind: .number, text: text, line: startLine, column: startColumn))
                } else if c == "'" || c == "\"" {
                    advance()
                    var text = ""
                    var closed = false
                    while index < characters.count {
                        let d = characters[index]
                        advance()
                        if d == c {
                            closed = true
                            break
                        }
                        if d == "\\", index < characters.count {
                            let e = characters[index]
                            advance()
                            switch e {
                            case "n": text.append("\n")
                            case "t": text.append("\t")
                            default: text.append(e)
                            }
                        } else {
                            text.append(d)
                        }
                    }
                    guard closed else {
                        throw Error(message: "unterminated string", line: startLine, column: startColumn)
                    }
                    tokens.append(Token(kind: .string, text: text, line: startLine, column: startColumn))
                } else {
                    let kind: Token.Kind
                    switch c {
                    case "(": kind = .open
                    case ")": kind = .close
                    case ",": kind = .comma
                    case ".": kind = .dot
                    default: throw Error(message: "unexpected character '\(c)'", line: startLine, column: startColumn)
                    }
                    tokens.append(Token(kind: kind, text: String(c), line: startLine, column: startColumn))
                    advance()
                }
            }
            tokens.append(Token(kind: .end, text: "end of expression", line: line, column: column))
            return tokens
        }
    }

    struct Parser {
        let tokens: [Token]
        var index = 0

        var peek: Token { tokens[index] }

        mutating func take() -> Token {
            let token = tokens[index]
            if index < tokens.count - 1 { index += 1 }
            return token
        }

        mutating func parseExpression() throws(Error) -> Node {
            let token = take()
            var node: Node
            switch token.kind {
            case .string: node = .string(token.text)
            case .number: node = .number(token.text)
            case .identifier:
                if ["true", "false", "null"].contains(token.text) {
                    node = .literal(token.text)
                } else if peek.kind == .open {
                    _ = take()
                    var arguments: [Node] = []
                    if peek.kind != .close {
                        while true {
                            arguments.append(try parseExpression())
                            if peek.kind == .comma {
                                _ = take()
                                continue
                            }
                            break
                        }
                    }
                    guard peek.kind == .close else {
                        throw Error(
                            message: "expected ',' or ')' but found '\(peek.text)'",
                            line: peek.line,
                            column: peek.column
                        )
                    }
                    _ = take()
                    let name = token.text
                    guard
                        StructrScript.builtIns.contains(name)
                            || StructrScript.apiFunctions.contains(StructrScript.camelCase(name))
                    else {
                        throw Error(message: "unknown function '\(name)'", line: token.line, column: token.column)
                    }
                    node = .call(name, arguments, token)
                } else {
                    node = .name(token.text, token)
                }
            default:
                throw Error(
                    message: "expected a value but found '\(token.text)'",
                    line: token.line,
                    column: token.column
                )
            }
            while peek.kind == .dot {
                _ = take()
                let member = take()
                guard member.kind == .identifier else {
                    throw Error(message: "expected a property name after '.'", line: member.line, column: member.column)
                }
                node = .member(node, member.text)
            }
            return node
        }
    }
}
