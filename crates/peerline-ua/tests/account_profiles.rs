//! Per-account sip-profiles: each `[[account]]` may name its own profile, and set its
//! own `[account.media]` keys; its calls (incoming calls to its user, outgoing calls
//! placed from it with `Phone::call_from`) use the phone's settings overridden by the
//! profile's, then by its own. Two phones on loopback; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{tone, wait_for};
use peerline_ua::{Config, EndReason, Event, Phone, SrtpMode};

/// Bob: SRTP mandatory phone-wide (DTLS), with two accounts on 127.0.0.1 that do not
/// register: `plain` under the `kamailio` profile (SRTP optional; its SDES form is not
/// used over UDP, so a plain-RTP peer is accepted) and `secure` under `generic` (SRTP
/// mandatory, DTLS).
const BOB: &str = r#"
[identity]
user = "bob"

[network]
sip_listen = "127.0.0.1:0"

[media]
srtp = "mandatory"
rtp_timeout_secs = 12

[[account]]
aor = "sip:plain@127.0.0.1"
register = false
profile = "kamailio"

[[account]]
aor = "sip:secure@127.0.0.1"
register = false
profile = "generic"
"#;

fn bob_config() -> Config {
    Config::parse(BOB, Path::new("bob.toml")).unwrap()
}

#[test]
fn an_accounts_profile_sets_its_media_and_the_file_still_wins() {
    let c = bob_config();
    assert_eq!(c.media.srtp, SrtpMode::Mandatory);
    let plain = c.accounts[0].media.as_ref().unwrap();
    assert_eq!(plain.srtp, SrtpMode::Optional, "kamailio profile");
    assert_eq!(plain.codecs[0], peerline_ua::CodecName::Pcmu);
    let secure = c.accounts[1].media.as_ref().unwrap();
    assert_eq!(secure.srtp, SrtpMode::Mandatory);
    assert_eq!(
        secure.codecs[0],
        peerline_ua::CodecName::Opus,
        "generic profile"
    );
    // A phone-wide key the profile leaves alone carries over.
    assert_eq!(plain.rtp_timeout_secs, 12);
    // The account's own `[account.media]` keys win over its profile.
    let c = Config::parse(
        &BOB.replace(
            "profile = \"kamailio\"\n",
            "profile = \"kamailio\"\n[account.media]\nptime = 40\n",
        ),
        Path::new("bob.toml"),
    )
    .unwrap();
    let plain = c.accounts[0].media.as_ref().unwrap();
    assert_eq!((plain.ptime, plain.srtp), (40, SrtpMode::Optional));
    assert_eq!(c.accounts[1].media.as_ref().unwrap().ptime, 20);
    // An unknown profile names the file, the account's line and the key.
    let e = Config::parse(
        &BOB.replace("profile = \"generic\"", "profile = \"nope\""),
        Path::new("bob.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with(
            "bob.toml:20: account sip:secure@127.0.0.1: profile: no sip-profile \"nope\""
        ),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_and_outgoing_calls_use_their_accounts_profile() {
    let (bob, mut be) = Phone::start(bob_config()).await.unwrap();
    let mut alice_config = common::config("alice");
    alice_config.media.srtp = SrtpMode::Off;
    let (alice, mut ae) = Phone::start(alice_config).await.unwrap();
    let bob_port = bob.sip_addr().port();

    // To `plain` (SRTP optional): a plain-RTP call is answered.
    let a = alice
        .call(
            &format!("sip:plain@127.0.0.1:{bob_port}"),
            tone(440.0, None),
        )
        .await
        .unwrap();
    let b = wait_for(&mut be, "call to plain", |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, None)).await.unwrap();
    wait_for(&mut ae, "plain answered", |e| match e {
        Event::Answered { call } if *call == a => Some(()),
        Event::Ended { call, reason, .. } if *call == a => {
            panic!("call to plain ended: {reason}")
        }
        _ => None,
    })
    .await;
    alice.hangup(a).await.unwrap();
    let media = wait_for(&mut be, "plain call ends", |e| match e {
        Event::Ended { media, .. } => Some(media.clone()),
        _ => None,
    })
    .await;
    assert_eq!(media.srtp, None, "plain RTP under the kamailio profile");

    // To `secure` (SRTP mandatory): Bob cannot answer a plain-RTP offer: 488 before
    // ringing (Bob's next events are checked for an incoming call below).
    let a = alice
        .call(
            &format!("sip:secure@127.0.0.1:{bob_port}"),
            tone(440.0, None),
        )
        .await
        .unwrap();
    let reason = wait_for(&mut ae, "secure refused", |e| match e {
        Event::Ended { call, reason, .. } if *call == a => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(matches!(reason, EndReason::Rejected(488, _)), "{reason:?}");

    // Outgoing from `plain`: a plain-RTP offer Alice accepts; from `secure`: an
    // SRTP-only offer she refuses with 488. From an unknown account: an error.
    let alice_uri = alice.uri("alice");
    let b = bob
        .call_from("sip:plain@127.0.0.1", &alice_uri, tone(1000.0, None))
        .await
        .unwrap();
    let a = wait_for(&mut ae, "call from plain", |e| match e {
        Event::Incoming { call, from, .. } => {
            assert!(from.contains("sip:plain@127.0.0.1"), "{from}");
            Some(*call)
        }
        _ => None,
    })
    .await;
    alice.answer(a, tone(440.0, None)).await.unwrap();
    wait_for(&mut be, "alice answered plain", |e| match e {
        Event::Answered { call } if *call == b => Some(()),
        Event::Incoming { .. } => panic!("bob rang for the call he could not answer"),
        Event::Ended { call, reason, .. } if *call == b => {
            panic!("call from plain ended: {reason}")
        }
        _ => None,
    })
    .await;
    bob.hangup(b).await.unwrap();
    wait_for(&mut ae, "call from plain ends", |e| {
        matches!(e, Event::Ended { .. }).then_some(())
    })
    .await;
    let b = bob
        .call_from("sip:secure@127.0.0.1", &alice_uri, tone(1000.0, None))
        .await
        .unwrap();
    let reason = wait_for(&mut be, "call from secure refused", |e| match e {
        Event::Ended { call, reason, .. } if *call == b => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(matches!(reason, EndReason::Rejected(488, _)), "{reason:?}");
    assert!(bob
        .call_from("sip:nobody@127.0.0.1", &alice_uri, tone(1000.0, None))
        .await
        .is_err());
    // Alice never rang for the offer she could not answer.
    while let Ok(Some(ev)) =
        tokio::time::timeout(std::time::Duration::from_millis(300), ae.recv()).await
    {
        assert!(!matches!(ev, Event::Incoming { .. }), "alice rang: {ev:?}");
    }
    alice.shutdown().await;
    bob.shutdown().await;
}
