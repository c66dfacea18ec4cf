import ArgumentParser

// `--help` shows a duration flag's default as a duration ("default: 10.0 s"), not as the
// Swift value ("default: SecondsArgument(seconds: 10.0)").
extension SecondsArgument {
    public var defaultValueDescription: String { Human.duration(seconds: seconds) }
}

extension MillisecondsArgument {
    public var defaultValueDescription: String { Human.duration(seconds: seconds) }
}
