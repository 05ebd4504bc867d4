// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Parsing of the userspace `struct kvm_msr_filter` argument.
//!
//! Both the x86-64 layout (392 bytes) and the 32-bit compat layout
//! (260 bytes) are decoded, without `unsafe`, into one [`FilterDesc`]. The
//! bitmap pointer is kept as a plain `u64` user address; it is only
//! dereferenced (through a caller-provided copier) when a filter is built.
//!
//! x86-64 layout, little-endian:
//!
//! ```text
//! 0      u32 flags
//! 4      u8  pad[4]
//! 8+24*i u32 ranges[i].flags
//!        u32 ranges[i].nmsrs
//!        u32 ranges[i].base
//!        u8  pad[4]
//!        u64 ranges[i].bitmap
//! ```
//!
//! Compat layout, little-endian:
//!
//! ```text
//! 0      u32 flags
//! 4+16*i u32 ranges[i].flags
//!        u32 ranges[i].nmsrs
//!        u32 ranges[i].base
//!        u32 ranges[i].bitmap
//! ```

use super::uapi::{
    COMPAT_FILTER_SIZE, COMPAT_RANGE_SIZE, KVM_MSR_FILTER_MAX_RANGES, NATIVE_FILTER_SIZE,
    NATIVE_RANGE_SIZE,
};

/// One `struct kvm_msr_filter_range` as userspace passed it, not validated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeDesc {
    /// `KVM_MSR_FILTER_READ` and/or `KVM_MSR_FILTER_WRITE` (unchecked).
    pub flags: u32,
    /// Number of MSRs covered; 0 means the slot is unused.
    pub nmsrs: u32,
    /// First MSR index covered.
    pub base: u32,
    /// User address of the bitmap (zero-extended in the compat layout).
    pub bitmap: u64,
}

/// One `struct kvm_msr_filter` as userspace passed it, not validated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterDesc {
    /// `KVM_MSR_FILTER_DEFAULT_DENY` or 0 (unchecked).
    pub flags: u32,
    /// The 16 range slots, in array order.
    pub ranges: [RangeDesc; KVM_MSR_FILTER_MAX_RANGES],
}

/// Reads a little-endian `u32` at `off`; out-of-range reads yield 0.
///
/// All callers pass offsets that are in bounds for the fixed-size arrays they
/// read from, so the fallback is never taken; it only avoids a panic path.
fn le_u32(bytes: &[u8], off: usize) -> u32 {
    match bytes.get(off..).and_then(|s| s.get(..4)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Reads a little-endian `u64` at `off`; out-of-range reads yield 0.
pub(crate) fn le_u64(bytes: &[u8], off: usize) -> u64 {
    let lo = u64::from(le_u32(bytes, off));
    let hi = u64::from(le_u32(bytes, off.saturating_add(4)));
    lo | (hi << 32)
}

impl FilterDesc {
    /// Decodes the x86-64 layout. Padding bytes are ignored, as the kernel does.
    pub fn from_native(bytes: &[u8; NATIVE_FILTER_SIZE]) -> Self {
        let mut desc = FilterDesc {
            flags: le_u32(bytes, 0),
            ..FilterDesc::default()
        };
        let mut off = 8;
        for r in desc.ranges.iter_mut() {
            *r = RangeDesc {
                flags: le_u32(bytes, off),
                nmsrs: le_u32(bytes, off + 4),
                base: le_u32(bytes, off + 8),
                bitmap: le_u64(bytes, off + 16),
            };
            // At most 8 + 16 * 24 = 392: no overflow.
            off += NATIVE_RANGE_SIZE;
        }
        desc
    }

    /// Decodes the 32-bit compat layout; the bitmap pointer is zero-extended.
    pub fn from_compat(bytes: &[u8; COMPAT_FILTER_SIZE]) -> Self {
        let mut desc = FilterDesc {
            flags: le_u32(bytes, 0),
            ..FilterDesc::default()
        };
        let mut off = 4;
        for r in desc.ranges.iter_mut() {
            *r = RangeDesc {
                flags: le_u32(bytes, off),
                nmsrs: le_u32(bytes, off + 4),
                base: le_u32(bytes, off + 8),
                bitmap: u64::from(le_u32(bytes, off + 12)),
            };
            // At most 4 + 16 * 16 = 260: no overflow.
            off += COMPAT_RANGE_SIZE;
        }
        desc
    }
}
