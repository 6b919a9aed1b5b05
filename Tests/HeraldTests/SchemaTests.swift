import Foundation
import HeraldSchema
import HeraldServer
import Logging
import Testing

@Suite struct SchemaTests {
    func load(_ files: [String: String]) throws -> Schema {
        let directory = try TestDirectory(files: files)
        return try SchemaLoader(directory: directory.schema).load()
    }

    func loadError(_ files: [String: String]) -> SchemaError? {
        do {
            _ = try load(files)
            return nil
        } catch let error as SchemaError {
            return error
        } catch {
            return nil
        }
    }

    @Test func exampleAppLoadsWithMethodsAndBuiltIns() throws {
        let schema = try SchemaLoader(directory: repositoryRoot.appendingPathComponent("schema")).load()
        #expect(Set(schema.types.keys).isSuperset(of: ["User", "Group", "ResourceAccess", "Post", "Comment"]))
        let comment = try #require(schema.types["Comment"])
        #expect(comment.hooks(for: .afterCreate).map(\.name) == ["afterCreate"])
        #expect(schema.globalMethods.map(\.name).contains("processDataItems"))
        #expect(schema.types["User"]?.relationships["posts"]?.direction == .incoming)
        #expect(schema.types["Group"]?.relationships["members"]?.otherTypes == ["User", "Group"])
        #expect(schema.types["Group"]?.relationships["groups"] != nil)
        #expect(schema.initialData?["User"] != nil)
        let listing = schema.listing
        let names = (listing["types"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        #expect(names.contains("Document"))
    }

    @Test func propertyShorthandAndModifiers() throws {
        let schema = try load(projectSchema)
        let project = try #require(schema.types["Project"])
        #expect(project.properties["name"]?.required == true)
        #expect(project.properties["name"]?.unique == true)
        #expect(project.properties["priority"]?.defaultValue == .int(0))
        #expect(project.properties["status"]?.type == .enumeration(["open", "closed"]))
        #expect(project.properties["notes"]?.type == .string)
        #expect(schema.types["User"]?.relationships["leads"]?.otherTypes == ["Project"])
        #expect(schema.types["Tag"]?.relationships["projects"]?.cardinality == .many)
    }

    @Test func invalidJSONNamesFileAndPosition() {
        let error = loadError(["Broken.json": "{\n  \"properties\": {\n    \"a\": \"string\",\n  }\n}"])
        #expect(error?.file == "Broken.json")
        #expect(error?.message.contains("line 4") == true)
    }

    @Test func unknownPropertyTypeNamesTheField() {
        let error = loadError(["Item.json": #"{"properties": {"count": {"type": "int"}}}"#])
        #expect(error?.file == "Item.json")
        #expect(error?.field == "properties.count.type")
        #expect(error?.message.contains("unknown property type 'int'") == true)
    }

    @Test func relationshipToMissingType() {
        let error = loadError(["Item.json": #"{"relationships": {"box": {"to": "Box", "cardinality": "one"}}}"#])
        #expect(error?.field == "relationships.box.to")
        #expect(error?.message.contains("missing type 'Box'") == true)
    }

    @Test func clashingNamesAreRefused() {
        let propertyVersusRelationship = loadError([
            "Item.json": #"{"properties": {"box": "string"}, "relationships": {"box": {"to": "Item"}}}"#
        ])
        #expect(propertyVersusRelationship?.field == "relationships.box")
        let inverseVersusProperty = loadError([
            "Box.json": #"{"properties": {"items": "string"}}"#,
            "Item.json": #"{"relationships": {"box": {"to": "Box", "inverse": "items"}}}"#,
        ])
        #expect(inverseVersusProperty?.file == "Item.json")
        #expect(inverseVersusProperty?.field == "relationships.box.inverse")
        #expect(inverseVersusProperty?.message.contains("Box.json") == true)
        let systemName = loadError(["Item.json": #"{"properties": {"createdDate": "date"}}"#])
        #expect(systemName?.field == "properties.createdDate")
        let builtIn = loadError(["User.json": #"{"properties": {"eMail": "string"}}"#])
        #expect(builtIn?.message.contains("built-in User.eMail") == true)
    }

    @Test func builtInTypesCanBeExtended() throws {
        let schema = try load(["User.json": #"{"properties": {"nickname": "string"}}"#])
        #expect(schema.types["User"]?.properties["nickname"]?.type == .string)
        #expect(schema.types["User"]?.properties["password"]?.writeOnly == true)
    }

    @Test func otherMistakesAreNamed() {
        #expect(loadError(["item.json": "{}"])?.file == "item.json")
        #expect(loadError(["Item.json": #"{"propertes": {}}"#])?.field == "propertes")
        #expect(loadError(["Item.json": #"{"properties": {"s": {"type": "enum"}}}"#])?.field == "properties.s.values")
        #expect(
            loadError(["Item.json": #"{"properties": {"n": {"type": "integer", "default": "x"}}}"#])?.field
                == "properties.n.default"
        )
        #expect(
            loadError(["Item.json": #"{"properties": {"n": {"type": "string", "unqiue": true}}}"#])?.field
                == "properties.n.unqiue"
        )
        #expect(loadError(["Item.json": "{}", "Box/onCreate.js": "{}"])?.file == "Box")
        #expect(
            loadError(["Item.json": #"{"properties": {"go": "string"}}"#, "Item/go.js": "{}"])?.file == "Item/go.js"
        )
    }

    @Test func startUpStopsOnABrokenSchema() async throws {
        let directory = try TestDirectory(files: ["Item.json": #"{"properties": {"count": "int"}}"#])
        await #expect(throws: SchemaError.self) {
            _ = try await TestServer.start(directory)
        }
    }
}
