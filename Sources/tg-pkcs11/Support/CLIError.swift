// User-facing failures. ArgumentParser prints `Error: <description>` and exits with status 1; none of
// these messages ever contains a PIN or key byte.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
