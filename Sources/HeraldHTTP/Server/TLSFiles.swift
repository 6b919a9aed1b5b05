import Foundation
import NIOSSL
import SwiftASN1
import X509

/// A PEM certificate chain and its private key, checked before anything listens.
public struct TLSFiles: Sendable, Equatable {
    /// The server's certificate, followed by any intermediates, in PEM.
    public var certificate: String
    /// The certificate's private key in PEM (PKCS #8, SEC 1 or PKCS #1).
    public var key: String

    public init(certificate: String, key: String) {
        self.certificate = certificate
        self.key = key
    }

    /// The server's TLS settings, offering `h2` and `http/1.1` by ALPN.
    ///
    /// Throws a ``TLSFileError`` naming the file when one is missing, unreadable, not PEM, or when
    /// the key does not belong to the certificate.
    public func serverConfiguration() throws(TLSFileError) -> TLSConfiguration {
        let certificatePEM = try Self.read(certificate, what: "certificate")
        let keyPEM = try Self.read(key, what: "key")
        let leaf: Certificate
        do {
            let documents = try PEMDocument.parseMultiple(pemString: certificatePEM)
            guard let first = documents.first(where: { $0.discriminator == "CERTIFICATE" }) else {
                throw TLSFileError(file: certificate, problem: "holds no PEM CERTIFICATE block")
            }
            leaf = try Certificate(pemDocument: first)
        } catch let error as TLSFileError {
            throw error
        } catch {
            throw TLSFileError(file: certificate, problem: "is not a PEM certificate (\(error))")
        }
        let privateKey: Certificate.PrivateKey
        do {
            privateKey = try Certificate.PrivateKey(pemEncoded: keyPEM)
        } catch {
            throw TLSFileError(file: key, problem: "is not a PEM private key (\(error))")
        }
        guard privateKey.publicKey == leaf.publicKey else {
            throw TLSFileError(
                file: key,
                problem: "does not belong to the certificate in \(certificate) (their public keys differ)"
            )
        }
        do {
            let chain = try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8))
            let sslKey = try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) },
                privateKey: .privateKey(sslKey)
            )
            configuration.applicationProtocols = ["h2", "http/1.1"]
            return configuration
        } catch {
            throw TLSFileError(file: certificate, problem: "cannot be used for TLS (\(error))")
        }
    }

    private static func read(_ path: String, what: String) throws(TLSFileError) -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            throw TLSFileError(file: path, problem: "does not exist (the TLS \(what))")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw TLSFileError(file: path, problem: "cannot be read (the TLS \(what))")
        }
        return text
    }
}

/// A certificate or key file that cannot serve TLS.
public struct TLSFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file at fault.
    public var file: String
    /// What is wrong with it.
    public var problem: String

    public var description: String { "TLS: \(file) \(problem)" }
}
