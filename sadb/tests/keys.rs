//! Key validation (ipseckey-behaviour.md 5.8, decisions.md simulated kernel
//! #5).

mod common;
use common::*;

/// `n` bytes of a key with no weak-key properties (all bytes differ).
fn material(n: usize) -> String {
    (0..n)
        .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
        .collect()
}

fn esp_encr(spi: u32, alg: u8, bits: u16, key_hex: &str) -> Message {
    esp_add(spi, Some(ME), PEER)
        .sa_edit(|s| s.encrypt = alg)
        .set(key(ExtKind::KeyEncrypt, bits, key_hex))
}

fn ah_auth(spi: u32, alg: u8, bits: u16, key_hex: &str) -> Message {
    ah_add(spi, Some(ME), PEER)
        .sa_edit(|s| s.auth = alg)
        .set(key(ExtKind::KeyAuth, bits, key_hex))
}

fn stored_encr_key(k: &mut Kernel, spi: u32) -> String {
    let got = k.get(satype::ESP, spi, PEER, T0);
    hex::encode(
        got.key(ExtKind::KeyEncrypt)
            .expect("GET shows the encryption key")
            .material
            .expose(),
    )
}

#[test]
fn des_key_parity_is_corrected_and_get_shows_the_corrected_key() {
    let mut k = kernel();
    k.ok(&esp_encr(0x100, EALG_DES, 64, "be02938e7def2839"), T0);
    assert_eq!(stored_encr_key(&mut k, 0x100), "bf02928f7cef2938");
    // 3DES: every subkey is corrected.
    k.ok(
        &esp_encr(
            0x200,
            EALG_3DES,
            192,
            "be02938e7def28390123456789abcdef23456789abcdef01",
        ),
        T0,
    );
    assert_eq!(
        stored_encr_key(&mut k, 0x200),
        "bf02928f7cef29380123456789abcdef23456789abcdef01"
    );
    // The echo never shows it.
    let echo = k.ok(&esp_encr(0x300, EALG_DES, 64, "be02938e7def2839"), T0);
    assert!(!echo.has(ExtKind::KeyEncrypt));
}

#[test]
fn des_weak_and_semi_weak_keys_are_weak_ekey_47() {
    let mut k = kernel();
    let weak = [
        "0101010101010101",
        "1f1f1f1f0e0e0e0e",
        "e0e0e0e0f1f1f1f1",
        "fefefefefefefefe",
        "01fe01fe01fe01fe",
        "fe01fe01fe01fe01",
        // Weak once its parity is corrected.
        "0001000100010001",
        "1e1e1e1e0f0f0f0f",
    ];
    for w in weak {
        k.refused(
            &esp_encr(0x100, EALG_DES, 64, w),
            T0,
            Errno::Einval,
            Diagnostic::WeakEkey,
        );
    }
}

#[test]
fn des_semi_weak_keys_follow_the_standard_table_not_the_byte_swapped_x86_one() {
    let mut k = kernel();
    for w in [
        "1fe01fe00ef10ef1",
        "e01fe01ff10ef10e",
        "01e001e001f101f1",
        "1ffe1ffe0efe0efe",
        "011f011f010e010e",
        "e0fee0fef1fef1fe",
    ] {
        k.refused(
            &esp_encr(0x100, EALG_DES, 64, w),
            T0,
            Errno::Einval,
            Diagnostic::WeakEkey,
        );
    }
    for (i, ok) in ["f10ef10ee01fe01f", "0ef10ef11fe01fe0", "010e010e011f011f"]
        .iter()
        .enumerate()
    {
        k.ok(&esp_encr(0x200 + i as u32, EALG_DES, 64, ok), T0);
    }
}

#[test]
fn triple_des_with_k1_equal_k2_or_k2_equal_k3_is_weak_47() {
    let mut k = kernel();
    let (a, b, c) = ("0123456789abcdef", "23456789abcdef01", "456789abcdef0123");
    for key_hex in [
        format!("{a}{a}{c}"),
        format!("{a}{b}{b}"),
        format!("{a}{a}{a}"),
    ] {
        k.refused(
            &esp_encr(0x100, EALG_3DES, 192, &key_hex),
            T0,
            Errno::Einval,
            Diagnostic::WeakEkey,
        );
    }
    // Equal only once parity is corrected (0x01 vs 0x00 in the last byte).
    let almost = format!("{a}0123456789abcdee{c}");
    k.refused(
        &esp_encr(0x100, EALG_3DES, 192, &almost),
        T0,
        Errno::Einval,
        Diagnostic::WeakEkey,
    );
}

#[test]
fn triple_des_with_k1_equal_k3_is_allowed() {
    let mut k = kernel();
    let (a, b) = ("0123456789abcdef", "23456789abcdef01");
    k.ok(&esp_encr(0x100, EALG_3DES, 192, &format!("{a}{b}{a}")), T0);
    assert_eq!(stored_encr_key(&mut k, 0x100), format!("{a}{b}{a}"));
}

#[test]
fn triple_des_with_any_weak_subkey_is_weak_47() {
    let mut k = kernel();
    let (a, b, c, w) = (
        "0123456789abcdef",
        "23456789abcdef01",
        "456789abcdef0123",
        "fe01fe01fe01fe01",
    );
    for key_hex in [
        format!("{w}{b}{c}"),
        format!("{a}{w}{c}"),
        format!("{a}{b}{w}"),
    ] {
        k.refused(
            &esp_encr(0x100, EALG_3DES, 192, &key_hex),
            T0,
            Errno::Einval,
            Diagnostic::WeakEkey,
        );
    }
}

#[test]
fn authentication_key_sizes_follow_the_algorithm_table_else_44() {
    let mut k = kernel();
    let table = [
        (AALG_MD5, 128u16),
        (AALG_SHA1, 160),
        (AALG_SHA256, 256),
        (6, 384),
        (7, 512),
    ];
    for (spi, (alg, good)) in (0x100..).zip(table) {
        for bad in [good - 8, good + 64, 64] {
            k.refused(
                &ah_auth(spi, alg, bad, &material(usize::from(bad / 8))),
                T0,
                Errno::Einval,
                Diagnostic::BadAkeybits,
            );
        }
        k.ok(
            &ah_auth(spi, alg, good, &material(usize::from(good / 8))),
            T0,
        );
    }
}

#[test]
fn encryption_key_sizes_follow_the_algorithm_table_with_salt_else_45() {
    let mut k = kernel();
    // (algorithm, accepted bits incl. salt, refused bits)
    let table: [(u8, &[u16], &[u16]); 6] = [
        (EALG_DES, &[64], &[56, 128]),
        (EALG_3DES, &[192], &[128, 256]),
        (EALG_BLOWFISH, &[128], &[64, 256]),
        (EALG_AES, &[128, 192, 256], &[64, 160, 320]),
        (EALG_AES_CCM8, &[152, 216, 280], &[128, 160, 256]),
        (EALG_AES_GCM16, &[160, 224, 288], &[128, 152, 256]),
    ];
    let mut spi = 0x100;
    for (alg, good, bad) in table {
        for &bits in bad {
            let req = esp_encr(spi, alg, bits, &material(usize::from(bits / 8)));
            k.refused(&req, T0, Errno::Einval, Diagnostic::BadEkeybits);
        }
        for &bits in good {
            k.ok(
                &esp_encr(spi, alg, bits, &material(usize::from(bits / 8))),
                T0,
            );
            spi += 1;
        }
    }
}

#[test]
fn encryption_key_salt_is_counted_in_the_bits_and_get_reports_it_in_reserved() {
    let mut k = kernel();
    let gcm_key = material(20);
    k.ok(
        &esp_encr(0x100, EALG_AES_GCM16, 160, &gcm_key)
            .sa_edit(|s| s.auth = AALG_NONE)
            .without(ExtKind::KeyAuth),
        T0,
    );
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    let e = got.key(ExtKind::KeyEncrypt).expect("key");
    assert_eq!(
        (e.bits, e.reserved, hex::encode(e.material.expose())),
        (128, 32, gcm_key)
    );
    let ccm_key = material(19);
    k.ok(&esp_encr(0x200, EALG_AES_CCM8, 152, &ccm_key), T0);
    let got = k.get(satype::ESP, 0x200, PEER, T0);
    let e = got.key(ExtKind::KeyEncrypt).expect("key");
    assert_eq!(
        (e.bits, e.reserved, hex::encode(e.material.expose())),
        (128, 24, ccm_key)
    );
}

#[test]
fn encryption_key_reserved_iv_bits_are_not_key_bits() {
    let mut k = kernel();
    let req = esp_add(0x100, Some(ME), PEER).set(Extension::Key(
        ExtKind::KeyEncrypt,
        Key {
            bits: 160,
            reserved: 32,
            material: hex(&format!("{AES128}cafebabe")),
        },
    ));
    k.ok(&req, T0);
    let got = k.get(satype::ESP, 0x100, PEER, T0);
    let e = got.key(ExtKind::KeyEncrypt).expect("key");
    assert_eq!((e.bits, e.material.expose()), (128, hex(AES128).expose()));
}

#[test]
fn null_encryption_with_any_key_is_bad_ekeybits_45() {
    let mut k = kernel();
    for bits in [64u16, 128] {
        let req = esp_encr(0x100, EALG_NULL, bits, &material(usize::from(bits / 8)));
        k.refused(&req, T0, Errno::Einval, Diagnostic::BadEkeybits);
    }
    k.ok(
        &esp_add(0x100, Some(ME), PEER)
            .sa_edit(|s| s.encrypt = EALG_NULL)
            .without(ExtKind::KeyEncrypt),
        T0,
    );
}

#[test]
fn hmac_aes_and_blowfish_keys_have_no_weak_key_check() {
    let mut k = kernel();
    let ones = |n: usize| "01".repeat(n);
    k.ok(&esp_encr(0x100, EALG_AES, 128, &ones(16)), T0);
    k.ok(&esp_encr(0x101, EALG_BLOWFISH, 128, &ones(16)), T0);
    k.ok(&esp_encr(0x102, EALG_AES, 128, &"fe".repeat(16)), T0);
    k.ok(&ah_auth(0x103, AALG_MD5, 128, &ones(16)), T0);
    assert_eq!(
        stored_encr_key(&mut k, 0x100),
        ones(16),
        "no parity correction outside DES"
    );
}
