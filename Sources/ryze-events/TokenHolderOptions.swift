import ArgumentParser
import RyzeCore

/// `--name` and `--token` of `account create` and `publisher create`: the same rules for both
/// kinds of token holder.
struct TokenHolderOptions: ParsableArguments {
    @Option(help: "Name: 1 to 100 of A-Z a-z 0-9 _ -.")
    var name: String

    @Option(help: "Use this token (16 to 256 printable ASCII characters, no spaces) instead of a generated one.")
    var token: String?

    func validate() throws {
        guard Names.isValidName(name) else { throw ValidationError("--name must match ^[A-Za-z0-9_-]{1,100}$") }
        if let token, !Names.isValidChosenToken(token) {
            throw ValidationError("--token must be 16 to 256 printable ASCII characters without spaces")
        }
    }

    /// The chosen token, or a new one.
    var tokenToIssue: String { token ?? TokenGenerator.make() }
}
