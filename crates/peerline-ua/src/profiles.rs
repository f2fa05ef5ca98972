//! The sip-profiles shipped in `sip-profiles/`, built into the binary so `profile = "…"`
//! works wherever the phone runs. docs/profiles.md says what each sets and why.

const PROFILES: &[(&str, &str)] = &[
    (
        "generic",
        include_str!("../../../sip-profiles/generic.toml"),
    ),
    (
        "baresip",
        include_str!("../../../sip-profiles/baresip.toml"),
    ),
    (
        "asterisk-pjsip",
        include_str!("../../../sip-profiles/asterisk-pjsip.toml"),
    ),
    (
        "freeswitch",
        include_str!("../../../sip-profiles/freeswitch.toml"),
    ),
    (
        "kamailio",
        include_str!("../../../sip-profiles/kamailio.toml"),
    ),
];

/// The profile's TOML text.
pub fn get(name: &str) -> Option<&'static str> {
    PROFILES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Every profile's name.
pub fn names() -> Vec<&'static str> {
    PROFILES.iter().map(|(n, _)| *n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CodecName, Config, SrtpKeying, SrtpMode};
    use std::path::Path;

    #[test]
    fn every_profile_is_a_valid_config_and_the_file_wins() {
        for name in names() {
            let c = Config::parse(&format!("profile = \"{name}\"\n"), Path::new("p.toml"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!c.media.codecs.is_empty(), "{name}");
        }
        let c = Config::parse("profile = \"baresip\"\n", Path::new("p.toml")).unwrap();
        assert_eq!(c.media.srtp, SrtpMode::Optional);
        assert_eq!(c.media.srtp_keying, SrtpKeying::Sdes);
        assert_eq!(c.media.codecs[0], CodecName::Opus);
        let c = Config::parse(
            "profile = \"baresip\"\n[media]\nsrtp = \"off\"\n",
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(c.media.srtp, SrtpMode::Off);
        assert_eq!(
            c.media.codecs[0],
            CodecName::Opus,
            "profile keys the file leaves alone stay"
        );
        let e = Config::parse("\n\nprofile = \"nope\"\n", Path::new("p.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("p.toml:3: profile: no sip-profile \"nope\""),
            "{e}"
        );
    }
}
