//! The phone's layer of the key vault (feature `vault`): [`DeviceKeystore`] seals the
//! PIN-sealed database key once more under a 32-byte device secret that the platform's
//! credential store keeps (Android: SharedPreferences encrypted by an Android Keystore key;
//! iOS: the Keychain, this device only). Without that device's store a copied key file
//! cannot even check a PIN guess.
//!
//! One secret per app install (service [`SERVICE`], user [`USER`]): made by the first seal,
//! kept across PIN changes, never made by an open, deleted by the wipe. A file sealed on
//! another phone (or before the app was reinstalled) finds no secret, or one that does not
//! open it, and says so ([`VaultError::NotThisDevice`]); recovery with the county's secret R
//! opens the key without this layer and seals the new PIN under this phone's secret.
//!
//! Which credential store a build uses is the app's choice (`app::lock::keystore`); here any
//! `keyring_core` store will do, so the tests use its in-memory sample store.

use std::collections::HashMap;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use keyring_core::{CredentialStore, Entry};
use rand::RngExt;

use super::vault::{Keystore, VaultError};

/// The keystore's name in the key file.
pub const NAME: &str = "device";
/// The entry's service in the platform store.
pub const SERVICE: &str = "gridwalk";
/// The entry's user in the platform store.
pub const USER: &str = "store-key";

const AAD: &[u8] = b"gridwalk-vault-1:device";

/// The vault's outermost layer under a device secret kept in `store`.
pub struct DeviceKeystore {
    store: Arc<CredentialStore>,
    /// Entry modifiers the platform store takes (iOS: the access policy).
    modifiers: Vec<(&'static str, &'static str)>,
}

impl DeviceKeystore {
    pub fn new(store: Arc<CredentialStore>) -> DeviceKeystore {
        DeviceKeystore::with_modifiers(store, &[])
    }

    /// With entry modifiers, given to the store at every entry (e.g. iOS's
    /// `access-policy`).
    pub fn with_modifiers(
        store: Arc<CredentialStore>,
        modifiers: &[(&'static str, &'static str)],
    ) -> DeviceKeystore {
        DeviceKeystore {
            store,
            modifiers: modifiers.to_vec(),
        }
    }

    fn entry(&self) -> Result<Entry, VaultError> {
        let mods: HashMap<&str, &str> = self.modifiers.iter().copied().collect();
        Entry::new_in_store_with_modifiers(&self.store, SERVICE, USER, &mods)
            .map_err(|e| VaultError::Keystore(e.to_string()))
    }

    /// The device secret, if the store holds one this device can read: `Ok(None)` when there
    /// is none, or when what is there cannot be read here (a backup of another phone's data:
    /// the entry came over, the hardware key that encrypts it did not).
    fn secret(&self, entry: &Entry) -> Result<Option<[u8; 32]>, VaultError> {
        match entry.get_secret() {
            Ok(s) => Ok(<[u8; 32]>::try_from(s.as_slice()).ok()),
            Err(keyring_core::Error::NoEntry)
            | Err(keyring_core::Error::BadDataFormat(..))
            | Err(keyring_core::Error::BadEncoding(_)) => Ok(None),
            Err(e) => Err(VaultError::Keystore(e.to_string())),
        }
    }

    /// Deletes the device secret (the wipe); none there is no error.
    pub fn forget_secret(&self) -> Result<(), VaultError> {
        match self.entry()?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(VaultError::Keystore(e.to_string())),
        }
    }
}

impl Keystore for DeviceKeystore {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Seals under the device secret, making and storing one first if there is none (or only
    /// one this device cannot read). Only a new PIN wrap seals (enrolment, PIN change,
    /// recovery), and that wrap replaces the vault's old one, so no file still needs a secret
    /// this replaces.
    fn seal(&self, data: &[u8]) -> Result<Vec<u8>, VaultError> {
        let entry = self.entry()?;
        let secret = match self.secret(&entry)? {
            Some(s) => s,
            None => {
                let mut s = [0u8; 32];
                rand::rng().fill(&mut s);
                entry
                    .set_secret(&s)
                    .map_err(|e| VaultError::Keystore(e.to_string()))?;
                s
            }
        };
        let mut nonce = [0u8; 12];
        rand::rng().fill(&mut nonce);
        let ct = ChaCha20Poly1305::new(&Key::from(secret))
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: data,
                    aad: AAD,
                },
            )
            .map_err(|_| VaultError::Keystore("ChaCha20-Poly1305 refused to seal".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens with the device secret; never makes one. No secret, or one that does not open
    /// `data`: [`VaultError::NotThisDevice`].
    fn open(&self, data: &[u8]) -> Result<Vec<u8>, VaultError> {
        let entry = self.entry()?;
        let Some(secret) = self.secret(&entry)? else {
            return Err(VaultError::NotThisDevice(
                "this phone's keystore holds no secret for it".into(),
            ));
        };
        let not_this =
            || VaultError::NotThisDevice("this phone's keystore secret does not open it".into());
        if data.len() < 12 + 16 {
            return Err(not_this());
        }
        let (nonce, ct) = data.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| not_this())?;
        ChaCha20Poly1305::new(&Key::from(secret))
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: AAD })
            .map_err(|_| not_this())
    }

    fn forget(&self) -> Result<(), VaultError> {
        self.forget_secret()
    }
}

/// A phone build whose platform store could not be opened: it neither seals nor opens (and
/// says why), so the app never falls back to a weaker vault without this layer.
pub struct UnavailableKeystore(pub String);

impl Keystore for UnavailableKeystore {
    fn name(&self) -> &'static str {
        NAME
    }
    fn seal(&self, _: &[u8]) -> Result<Vec<u8>, VaultError> {
        Err(VaultError::Keystore(self.0.clone()))
    }
    fn open(&self, _: &[u8]) -> Result<Vec<u8>, VaultError> {
        Err(VaultError::Keystore(self.0.clone()))
    }
    fn forget(&self) -> Result<(), VaultError> {
        Err(VaultError::Keystore(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> DeviceKeystore {
        DeviceKeystore::new(keyring_core::sample::Store::new().unwrap())
    }

    #[test]
    fn a_sealed_layer_opens_only_on_its_phone_and_open_never_makes_a_secret() {
        let (a, b) = (phone(), phone());
        let sealed = a.seal(b"the PIN-sealed key").unwrap();
        assert_eq!(a.open(&sealed).unwrap(), b"the PIN-sealed key");
        // Another phone: no secret, and the open makes none.
        assert!(matches!(b.open(&sealed), Err(VaultError::NotThisDevice(_))));
        assert!(matches!(
            b.entry().unwrap().get_secret(),
            Err(keyring_core::Error::NoEntry)
        ));
        // Another phone with a secret of its own: still not this device.
        b.seal(b"x").unwrap();
        assert!(matches!(b.open(&sealed), Err(VaultError::NotThisDevice(_))));
        // Tampered or cut short: the same refusal, no panic.
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(a.open(&bad), Err(VaultError::NotThisDevice(_))));
        assert!(matches!(
            a.open(&sealed[..20]),
            Err(VaultError::NotThisDevice(_))
        ));
        // The secret is kept across seals (one per install), and forgotten by the wipe.
        let again = a.seal(b"another PIN").unwrap();
        assert_eq!(a.open(&sealed).unwrap(), b"the PIN-sealed key");
        assert_eq!(a.open(&again).unwrap(), b"another PIN");
        a.forget().unwrap();
        a.forget().unwrap();
        assert!(matches!(a.open(&sealed), Err(VaultError::NotThisDevice(_))));
    }

    #[test]
    fn an_unreadable_secret_is_replaced_by_a_seal_but_refused_by_an_open() {
        let a = phone();
        let sealed = a.seal(b"k").unwrap();
        // What a restored backup of another phone leaves: an entry, not 32 bytes of ours.
        a.entry().unwrap().set_secret(b"short").unwrap();
        assert!(matches!(a.open(&sealed), Err(VaultError::NotThisDevice(_))));
        let resealed = a.seal(b"k2").unwrap();
        assert_eq!(a.open(&resealed).unwrap(), b"k2");
    }

    #[test]
    fn an_unavailable_store_refuses_to_seal() {
        let u = UnavailableKeystore("no context".into());
        assert_eq!(u.name(), NAME);
        assert!(matches!(u.seal(b"k"), Err(VaultError::Keystore(_))));
        assert!(matches!(u.open(b"k"), Err(VaultError::Keystore(_))));
    }
}
