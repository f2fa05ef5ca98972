//! Error types of the message layer.

use thiserror::Error;

/// Why a datagram could not be accepted as a SIP message.
///
/// Every variant maps to the SIP status a UAS should answer with
/// ([`ParseError::status_code`]) and a short reason phrase naming the problem
/// ([`ParseError::reason`]), suitable for the status line of that answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The datagram is larger than the configured maximum.
    #[error("message too large: {size} bytes (max {max})")]
    TooLarge {
        /// Size of the datagram.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The datagram only held CRLF keep-alives (or nothing).
    #[error("empty message (keep-alive)")]
    Empty,
    /// The header section is not valid UTF-8.
    #[error("header section is not valid UTF-8")]
    NotUtf8,
    /// No empty line terminating the header section.
    #[error("no empty line after the header section")]
    NoHeaderEnd,
    /// The start line (Request-Line or Status-Line) is malformed.
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    /// The SIP version is not SIP/2.0 (answer 505).
    #[error("unsupported SIP version {0}")]
    UnsupportedVersion(String),
    /// The method is syntactically valid but not one we understand (answer 501).
    #[error("unknown method {0}")]
    UnknownMethod(String),
    /// The Request-URI is malformed.
    #[error("invalid Request-URI: {0}")]
    RequestUri(String),
    /// The status code of a response is not three digits in 100..=699.
    #[error("invalid status code {0}")]
    StatusCode(String),
    /// A header line is longer than the configured maximum.
    #[error("header line too long (max {max})")]
    HeaderLineTooLong {
        /// Configured maximum.
        max: usize,
    },
    /// More header fields than the configured maximum.
    #[error("too many header fields (max {max})")]
    TooManyHeaders {
        /// Configured maximum.
        max: usize,
    },
    /// A header line without a valid `name:` part.
    #[error("malformed header line")]
    HeaderLine,
    /// A mandatory header is missing.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header that must appear once appears several times.
    #[error("duplicate {0} header")]
    DuplicateHeader(&'static str),
    /// A header field value is malformed.
    #[error("invalid {name} header: {problem}")]
    InvalidHeader {
        /// Canonical header name.
        name: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The CSeq method differs from the Request-Line method.
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMethodMismatch {
        /// Method in the Request-Line.
        method: String,
        /// Method in CSeq.
        cseq: String,
    },
    /// Content-Length larger than the body that was received.
    #[error("Content-Length {declared} larger than body ({available} bytes)")]
    ContentLengthMismatch {
        /// Value of Content-Length.
        declared: usize,
        /// Bytes actually present after the header section.
        available: usize,
    },
}

impl ParseError {
    /// SIP status code a UAS should answer a request failing this way with
    /// (400, or 501 for an unknown method, 505 for an unsupported version, 513 for too large).
    pub fn status_code(&self) -> u16 {
        match self {
            ParseError::UnknownMethod(_) => 501,
            ParseError::UnsupportedVersion(_) => 505,
            ParseError::TooLarge { .. } => 513,
            _ => 400,
        }
    }

    /// A reason phrase naming the problem, safe for a status line
    /// (printable ASCII only, at most 120 characters).
    pub fn reason(&self) -> String {
        let text = match self {
            ParseError::UnknownMethod(_) => "Not Implemented".to_string(),
            ParseError::UnsupportedVersion(_) => "Version Not Supported".to_string(),
            ParseError::TooLarge { .. } => "Message Too Large".to_string(),
            other => {
                let mut s = other.to_string();
                if let Some(first) = s.get(0..1) {
                    let up = first.to_ascii_uppercase();
                    s.replace_range(0..1, &up);
                }
                s
            }
        };
        sanitize_reason(&text)
    }
}

/// Keep only printable ASCII (no CR/LF), collapse to at most 120 chars.
pub(crate) fn sanitize_reason(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(120)
        .collect();
    if out.trim().is_empty() {
        out = "Bad Request".to_string();
    }
    out
}

/// Error building a message from parts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BuildError {
    /// A required part was not supplied.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A supplied value is invalid.
    #[error("invalid {what}: {problem}")]
    Invalid {
        /// What was being built.
        what: &'static str,
        /// Why it is invalid.
        problem: String,
    },
}
