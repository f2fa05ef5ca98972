//! The phone: accounts, registration, calls, config and profiles.
