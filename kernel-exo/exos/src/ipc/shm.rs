//! Shared memory between environments.
//!
//! The creator owns the pages ([`Shm::create`]). To share them it grants
//! each page to the peer and writes the peer's new capabilities into a
//! *token page*, which it grants too ([`Shm::share`]); the token — one
//! capability, valid only for that peer — travels to it any way the two
//! like (a PCT message, spawn arguments). The peer maps the pages with
//! [`Shm::attach`]. Capabilities are per holder, so a token is useless to
//! anyone else, and everything the peer reads from the token is checked
//! (the kernel checks each capability again when it is bound).
//!
//! If the owner frees the pages (drops its `Shm`, or ends), the kernel
//! breaks the peer's bindings; the peer's next access finds zeroes (ExOS
//! maps a zeroed page) and [`Shm::alive`] turns false.

use crate::ipc::IpcError;
use crate::vm::{self, Kind, Mapping, region};
use crate::{private, sys};
use alloc::vec::Vec;
use exo_abi::{Cap, EnvId, Prot, Rights};

/// Most pages one shared region may have (their capabilities fit in the
/// token page).
pub const MAX_PAGES: usize = 500;

const TOKEN_MAGIC: u64 = 0x5348_4d54_4f4b_0001;

/// The token page's layout.
#[repr(C)]
struct TokenPage {
    magic: u64,
    /// Who made it (the owner).
    owner: u64,
    pages: u64,
    rights: u64,
    caps: [u64; MAX_PAGES],
}

const _: () = assert!(core::mem::size_of::<TokenPage>() <= 4096);

/// A peer's capability for a token page (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token(pub Cap);

/// A shared region, mapped here.
#[derive(Debug)]
pub struct Shm {
    va: u64,
    pages: u64,
    /// We own the pages (else we attached).
    owner: bool,
    /// The environment on the other side (for attachers: the owner).
    peer: Option<EnvId>,
    /// Owner: the token pages we made; attacher: one of the grants we hold
    /// (its liveness is the region's).
    caps: Vec<Cap>,
    /// Owner: one grant we gave the peer (its liveness is the peer's: the
    /// kernel revokes it when the peer ends).
    given: Option<Cap>,
}

impl Shm {
    /// `pages` fresh pages, ours, mapped read-write here.
    pub fn create(pages: u64) -> Result<Shm, IpcError> {
        if pages == 0 || pages as usize > MAX_PAGES {
            return Err(IpcError::BadArgument);
        }
        let va = Mapping::anon(pages).kind(Kind::Shared, region::NOFORK).map()?;
        Ok(Shm { va, pages, owner: true, peer: None, caps: Vec::new(), given: None })
    }

    /// Grant every page to `peer` with `rights` and return the token it
    /// attaches with.
    pub fn share(&mut self, peer: EnvId, rights: Rights) -> Result<Token, IpcError> {
        if !self.owner {
            return Err(IpcError::NotOwner);
        }
        if !rights.is_grantable() {
            return Err(IpcError::BadArgument);
        }
        self.caps.try_reserve(1).map_err(|_| IpcError::Kernel(exo_abi::Error::OutOfMemory))?;
        let (tcap, _) = sys::page_alloc(exo_abi::ANY_PAGE)?;
        let r = (|| {
            let mut token = TokenPage {
                magic: TOKEN_MAGIC,
                owner: sys::env_self().0,
                pages: self.pages,
                rights: rights.0,
                caps: [0; MAX_PAGES],
            };
            for i in 0..self.pages {
                let (cap, _, _) = vm::page_at(self.va + i * 4096).ok_or(IpcError::Broken)?;
                token.caps[i as usize] = sys::page_grant(cap, peer, rights)?.0;
            }
            fill_token(tcap, &token)?;
            Ok((sys::page_grant(tcap, peer, Rights::READ)?, Cap(token.caps[0])))
        })();
        match r {
            Ok((theirs, first)) => {
                self.caps.push(tcap);
                self.peer = Some(peer);
                self.given = Some(first);
                Ok(Token(theirs))
            }
            Err(e) => {
                // SAFETY: the token page is bound nowhere (fill unbinds it).
                let _ = unsafe { sys::page_free(tcap) };
                Err(e)
            }
        }
    }

    /// Map the pages a token names (granted to us); `owner` is who sent it.
    pub fn attach(token: Token) -> Result<Shm, IpcError> {
        let t = read_token(token.0)?;
        let rights = Rights(t.rights);
        let prot = if rights.contains(Rights::WRITE) { Prot::RW } else { Prot::READ };
        let caps: Vec<Cap> = t.caps[..t.pages as usize].iter().map(|&c| Cap(c)).collect();
        let va = match vm::map_grants(&caps, prot) {
            Ok(va) => va,
            Err(e) => {
                for c in &caps {
                    // SAFETY: not bound here.
                    let _ = unsafe { sys::cap_revoke(*c) };
                }
                return Err(e.into());
            }
        };
        Ok(Shm {
            va,
            pages: t.pages,
            owner: false,
            peer: Some(EnvId(t.owner)),
            caps: alloc::vec![caps[0]],
            given: None,
        })
    }

    /// Where it is mapped.
    pub fn addr(&self) -> u64 {
        self.va
    }

    pub fn pages(&self) -> u64 {
        self.pages
    }

    pub fn len(&self) -> usize {
        (self.pages * 4096) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }

    pub fn is_owner(&self) -> bool {
        self.owner
    }

    /// The environment on the other side, if known.
    pub fn peer(&self) -> Option<EnvId> {
        self.peer
    }

    /// Whether the other side is still there: for an attacher, the owner
    /// has not taken the pages back (nor ended); for the owner, the peer
    /// it last shared with still holds its grant (it has not ended).
    pub fn alive(&self) -> bool {
        if self.owner {
            return self.given.is_none_or(|g| sys::cap_info(g).is_ok());
        }
        self.caps.first().is_some_and(|c| sys::cap_info(*c).is_ok())
    }

    /// A pointer to byte `offset` (volatile access is the caller's duty:
    /// the other side may write at any time it runs).
    pub fn ptr(&self, offset: usize) -> Option<*mut u8> {
        (offset < self.len()).then_some((self.va + offset as u64) as *mut u8)
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        let _ = vm::unmap(self.va, self.pages);
        if self.owner {
            for c in &self.caps {
                // SAFETY: token pages are bound nowhere here.
                let _ = unsafe { sys::page_free(*c) };
            }
        }
    }
}

/// Write `token` into the token page `cap` through the fill window.
fn fill_token(cap: Cap, token: &TokenPage) -> Result<(), IpcError> {
    let _c = private::critical();
    let b = exo_abi::Binding { va: private::FILL_VA, cap: cap.0, prot: Prot::RW.0 };
    // SAFETY: the fill window is private and used one page at a time.
    let (_, r) = unsafe { sys::bind(exo_abi::ENV_SELF, &[b]) };
    r?;
    // SAFETY: bound read-write just now; a TokenPage fits in a page.
    unsafe { core::ptr::write_volatile(private::FILL_VA as *mut TokenPage, core::ptr::read(token)) };
    let un = exo_abi::Binding { va: private::FILL_VA, cap: 0, prot: 0 };
    // SAFETY: as above.
    let (_, r) = unsafe { sys::bind(exo_abi::ENV_SELF, &[un]) };
    r.map_err(IpcError::from)
}

/// Read (and check) the token page we hold `cap` for, then drop it.
fn read_token(cap: Cap) -> Result<TokenPage, IpcError> {
    let _c = private::critical();
    let b = exo_abi::Binding { va: private::FILL_VA, cap: cap.0, prot: Prot::READ.0 };
    // SAFETY: the fill window is private and used one page at a time.
    let (_, r) = unsafe { sys::bind(exo_abi::ENV_SELF, &[b]) };
    r.map_err(|_| IpcError::BadToken)?;
    // SAFETY: bound readable just now; any bytes are a valid TokenPage.
    let t = unsafe { core::ptr::read_volatile(private::FILL_VA as *const TokenPage) };
    // SAFETY: as above; then the token's grant is dropped.
    unsafe {
        let _ = sys::bind(exo_abi::ENV_SELF, &[exo_abi::Binding { va: private::FILL_VA, cap: 0, prot: 0 }]);
        let _ = sys::cap_revoke(cap);
    }
    let rights = Rights(t.rights);
    if t.magic != TOKEN_MAGIC || t.pages == 0 || t.pages as usize > MAX_PAGES || !rights.is_grantable() {
        return Err(IpcError::BadToken);
    }
    Ok(t)
}
