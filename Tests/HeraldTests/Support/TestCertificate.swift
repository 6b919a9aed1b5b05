import AsyncHTTPClient
import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import Testing
import X509

/// A certificate authority made for the tests and a server certificate it signed for
/// `localhost` and 127.0.0.1, written as PEM files into a temporary folder.
struct TestCertificate: Sendable {
    let folder: URL
    /// The server's certificate and its key.
    let certificateFile: String
    let keyFile: String
    /// The authority's certificate, which the tests' clients trust.
    let authorityFile: String
    let authority: Certificate
    let server: Certificate

    /// The base64 SHA-256 of the server key's SubjectPublicKeyInfo, as Chromium's
    /// `--ignore-certificate-errors-spki-list` takes it: the browser trusts exactly this key.
    var spkiHash: String {
        var serializer = DER.Serializer()
        try? serializer.serialize(server.publicKey)
        return Data(SHA256.hash(data: serializer.serializedBytes)).base64EncodedString()
    }

    /// A key that belongs to no certificate here.
    static var otherKeyPEM: String { P256.Signing.PrivateKey().pemRepresentation }

    /// One certificate for the whole test run.
    static let shared: TestCertificate = {
        do { return try TestCertificate() } catch { fatalError("cannot make the test certificate: \(error)") }
    }()

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("herald-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let now = Date()
        let authorityKey = P256.Signing.PrivateKey()
        let authorityName = try DistinguishedName { CommonName("Herald test authority") }
        authority = try Certificate(
            version: .v3,
            serialNumber: .init(),
            publicKey: .init(authorityKey.publicKey),
            notValidBefore: now - 3600,
            notValidAfter: now + 86400 * 30,
            issuer: authorityName,
            subject: authorityName,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                KeyUsage(keyCertSign: true)
            },
            issuerPrivateKey: .init(authorityKey)
        )
        let serverKey = P256.Signing.PrivateKey()
        server = try Certificate(
            version: .v3,
            serialNumber: .init(),
            publicKey: .init(serverKey.publicKey),
            notValidBefore: now - 3600,
            notValidAfter: now + 86400 * 30,
            issuer: authorityName,
            subject: try DistinguishedName { CommonName("localhost") },
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([
                    .dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                ])
            },
            issuerPrivateKey: .init(authorityKey)
        )
        certificateFile = folder.appendingPathComponent("server.pem").path
        keyFile = folder.appendingPathComponent("server.key").path
        authorityFile = folder.appendingPathComponent("authority.pem").path
        try Data(try server.serializeAsPEM().pemString.utf8).write(to: URL(fileURLWithPath: certificateFile))
        try Data(serverKey.pemRepresentation.utf8).write(to: URL(fileURLWithPath: keyFile))
        try Data(try authority.serializeAsPEM().pemString.utf8).write(to: URL(fileURLWithPath: authorityFile))
    }

    /// A client that trusts the authority and speaks HTTP/2 where the server offers it.
    static let client: HTTPClient = {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(shared.authorityFile)
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.httpVersion = .automatic
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()
}

/// How a test reaches its server: HTTP/1.1 in cleartext, or HTTP/2 over TLS.
enum TestTransport: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case http1
    case http2

    var testDescription: String { self == .http1 ? "HTTP/1.1" : "HTTP/2 over TLS" }

    var scheme: String { self == .http1 ? "http" : "https" }

    var client: HTTPClient { self == .http1 ? HTTPClient.shared : TestCertificate.client }
}
