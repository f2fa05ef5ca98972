//! Parse errors. Every error names the 1-based line it was found on.

/// An SDP body could not be parsed.
///
/// A SIP UA answers such an offer with `400 Bad Request` (see [`ParseError::sip_status`]);
/// the `Display` text is suitable as the reason phrase / Warning text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SDP line {line}: {problem}")]
pub struct ParseError {
    /// 1-based line number. For a missing line, the line where it was expected.
    pub line: usize,
    /// What is wrong with it.
    pub problem: Problem,
}

impl ParseError {
    pub(crate) fn new(line: usize, problem: Problem) -> Self {
        Self { line, problem }
    }

    /// The SIP status a UA should answer a malformed SDP offer with.
    pub fn sip_status(&self) -> u16 {
        400
    }
}

/// The problem found on a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The body is not UTF-8.
    #[error("not valid UTF-8")]
    NotUtf8,
    /// The body exceeds [`crate::Limits::max_bytes`].
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// More lines than [`crate::Limits::max_lines`].
    #[error("more than {limit} lines")]
    TooManyLines {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A line longer than [`crate::Limits::max_line_len`].
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// More media sections than [`crate::Limits::max_media`].
    #[error("more than {limit} m= sections")]
    TooManyMedia {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// More formats on one m= line than [`crate::Limits::max_formats`].
    #[error("more than {limit} formats on the m= line")]
    TooManyFormats {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A control character (other than tab) inside a line.
    #[error("control character inside the line")]
    ControlCharacter,
    /// Not of the form `<letter>=<value>`.
    #[error("expected `<type>=<value>`, found `{0}`")]
    NotTypeValue(String),
    /// A type letter this parser does not know (RFC 8866 §5 says reject).
    #[error("unknown line type `{0}=`")]
    UnknownType(char),
    /// A known line in a place where it is not allowed.
    #[error("`{0}=` line not allowed here")]
    Misplaced(char),
    /// A line that may appear only once appeared again.
    #[error("`{0}=` line repeated")]
    Duplicate(char),
    /// The body does not start with `v=`.
    #[error("the description must start with `v=0`")]
    NoVersion,
    /// `v=` with something other than 0.
    #[error("unsupported SDP version `{0}`")]
    BadVersion(String),
    /// A mandatory line is missing.
    #[error("missing `{0}=` line")]
    Missing(char),
    /// A field of a line has an invalid value.
    #[error("invalid {field} `{value}`")]
    Invalid {
        /// Which field (e.g. "m= port").
        field: &'static str,
        /// The offending text (shortened).
        value: String,
    },
    /// A known attribute has an invalid value.
    #[error("a={attribute}: {reason}")]
    Attribute {
        /// The attribute name.
        attribute: String,
        /// Why its value was rejected.
        reason: String,
    },
}

/// Shorten untrusted text before putting it into an error message.
pub(crate) fn snippet(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub(crate) fn invalid(field: &'static str, value: &str) -> Problem {
    Problem::Invalid {
        field,
        value: snippet(value),
    }
}
