//! SIP messages (on rsip), sans-IO transactions and dialogs, digest auth.
