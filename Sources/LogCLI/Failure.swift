// The one place where an error becomes what a user sees: a one-line message
// and an exit status. The layers below describe their errors (each has a
// `message` naming the file and offset or line); only here is it decided
// what they mean for a script that branches on the status.
//
//   0  success
//   1  the data said no: damage, a malformed line, a key not found
//   2  usage or environment: a bad option, an unreadable file, a full disk

import LogFormat
import LogIO
import LogJSON
import LogStore
import LogNATS

public enum ExitCode: Int32, Sendable {
    case success = 0
    case dataRejected = 1
    case usage = 2
}

public enum Failure {
    public static func describe(_ error: any Error) -> (message: String, status: ExitCode) {
        switch error {
        // The data said no.
        case let error as RecordFault: (error.message, .dataRejected)
        case let error as SegmentFault: (error.message, .dataRejected)
        case let error as OffsetBeyondEnd: (error.message, .dataRejected)
        case let error as InputLineError: (error.message, .dataRejected)
        case let error as LineTooLong: (error.message, .dataRejected)
        case let error as IndexError: (error.message, .dataRejected)
        case let error as IncompleteScan: (error.message, .dataRejected)
        case let error as TailDamageRefused: (error.message, .dataRejected)
        case let error as FollowStopped: (error.message, .dataRejected)
        case let error as CursorError: (error.message, .dataRejected)
        case let error as NoCursor: (error.message, .dataRejected)
        case let error as CompactionRefused: (error.message, error.cause == .damage ? .dataRejected : .usage)
        // The environment or the request said no.
        case let error as SystemError: (error.message, .usage)
        case let error as AppendFailure: (error.message, .usage)
        case let error as PathRefused: (error.message, .usage)
        case let error as NATSError: (error.message, .usage)
        case let error as APIError: (error.message, .usage)
        default: ("\(error)", .usage)
        }
    }
}
