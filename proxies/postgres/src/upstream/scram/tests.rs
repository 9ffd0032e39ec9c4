#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

use super::*;

// RFC 7677, section 3: user `user`, password `pencil`.
const NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

/// The client's final message for `password`, and the exchange awaiting the
/// server's signature.
async fn prove(cache: &KeyCache, password: &str) -> (Exchange, String) {
    let mut x = Exchange::with_nonce("user", NONCE);
    assert_eq!(x.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    let first = x.server_first(SERVER_FIRST.as_bytes()).unwrap();
    let keys = cache
        .keys(password.as_bytes(), &first.salt, first.iterations)
        .await
        .unwrap();
    let last = x.client_final(&first, &keys).unwrap();
    (x, String::from_utf8(last).unwrap())
}

#[tokio::test]
async fn the_rfc_7677_exchange_and_a_second_login_without_pbkdf2() {
    let cache = KeyCache::default();
    let (mut x, last) = prove(&cache, "pencil").await;
    assert_eq!(last, CLIENT_FINAL);
    assert!(!x.verified());
    x.server_final(SERVER_FINAL.as_bytes()).unwrap();
    assert!(x.verified());
    assert_eq!(cache.derivations(), 1);
    // The same credential, salt and rounds: the same proof, no derivation.
    let (mut x, last) = prove(&cache, "pencil").await;
    assert_eq!(last, CLIENT_FINAL);
    x.server_final(SERVER_FINAL.as_bytes()).unwrap();
    assert_eq!(cache.derivations(), 1);
}

#[tokio::test]
async fn a_wrong_password_still_fails_with_keys_cached() {
    let cache = KeyCache::default();
    prove(&cache, "pencil").await;
    let (mut x, last) = prove(&cache, "pencil!").await;
    assert_eq!(
        cache.derivations(),
        2,
        "a different password is derived anew"
    );
    assert_ne!(last, CLIENT_FINAL);
    // The server's check of the proof (RFC 5802, section 3) fails...
    let keys = cache
        .keys(
            b"pencil",
            &STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
            NonZeroU32::new(4096).unwrap(),
        )
        .await
        .unwrap();
    let (without_proof, proof) = last.rsplit_once(",p=").unwrap();
    let auth = format!("n=user,r={NONCE},{SERVER_FIRST},{without_proof}");
    let signature = tag(
        &hmac::Key::new(hmac::HMAC_SHA256, &keys.stored),
        auth.as_bytes(),
    );
    let mut client_key = STANDARD.decode(proof).unwrap();
    client_key
        .iter_mut()
        .zip(signature)
        .for_each(|(c, s)| *c ^= s);
    assert_ne!(sha256(&client_key), keys.stored);
    // ...and the real server's signature does not match this client's keys.
    assert_eq!(
        x.server_final(SERVER_FINAL.as_bytes()),
        Err(ScramError::Signature)
    );
    assert!(!x.verified());
}

#[tokio::test]
async fn the_server_signature_is_checked() {
    let cache = KeyCache::default();
    let (mut x, _) = prove(&cache, "pencil").await;
    let forged = "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
    assert_eq!(
        x.server_final(forged.as_bytes()),
        Err(ScramError::Signature)
    );
    assert_eq!(
        x.server_final(b"e=invalid-proof"),
        Err(ScramError::Server("invalid-proof".into()))
    );
    assert!(matches!(
        x.server_final(b"x=1"),
        Err(ScramError::Malformed(_))
    ));
    assert!(!x.verified());
    // No signature can be checked before the proof went out.
    let mut early = Exchange::with_nonce("", NONCE);
    assert!(matches!(
        early.server_final(SERVER_FINAL.as_bytes()),
        Err(ScramError::Order(_))
    ));
}

#[test]
fn server_first_messages_are_checked() {
    let x = Exchange::with_nonce("", NONCE);
    let bad = |m: &str| x.server_first(m.as_bytes()).unwrap_err();
    assert_eq!(bad("r=someone-else,s=AAAA,i=4096"), ScramError::Nonce);
    assert_eq!(bad(&format!("r={NONCE},s=AAAA,i=4096")), ScramError::Nonce);
    assert!(matches!(
        bad(&format!("m=ext,r={NONCE}x,s=AAAA,i=4096")),
        ScramError::Malformed(_)
    ));
    assert!(matches!(
        bad(&format!("r={NONCE}x,s=!!,i=4096")),
        ScramError::Malformed(_)
    ));
    assert!(matches!(
        bad(&format!("r={NONCE}x,s=AAAA,i=0")),
        ScramError::Malformed(_)
    ));
    assert_eq!(
        bad(&format!("r={NONCE}x,s=AAAA,i=4000000000")),
        ScramError::Iterations(4_000_000_000)
    );
    let ok = x
        .server_first(format!("r={NONCE}x,s=AAAA,i=4096").as_bytes())
        .unwrap();
    assert_eq!(
        (ok.salt.as_slice(), ok.iterations.get()),
        (&[0u8, 0, 0][..], 4096)
    );
}

/// Logins that arrive together for an uncached credential wait for one derivation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_derive_once() {
    let cache = Arc::new(KeyCache::default());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .keys(b"pencil", b"salt", NonZeroU32::new(4096).unwrap())
                    .await
                    .unwrap()
                    .client
            })
        })
        .collect();
    let mut keys = Vec::new();
    for t in tasks {
        keys.push(t.await.unwrap());
    }
    assert!(keys.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(cache.derivations(), 1);
}

#[test]
fn passwords_are_prepared_as_postgresql_prepares_them() {
    // SASLprep maps a non-ASCII space to a space; a prohibited character leaves
    // the password as it is; so does a password that is not UTF-8.
    assert_eq!(normalize("a\u{00A0}b".as_bytes()), b"a b");
    assert_eq!(normalize(b"a\x07b"), b"a\x07b");
    assert_eq!(normalize(b"\xff\xfe"), b"\xff\xfe");
}
