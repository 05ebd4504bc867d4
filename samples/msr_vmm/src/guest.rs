// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The guest payload: 16-bit real-mode machine code assembled from a list of
//! [`Command`]s.
//!
//! Memory layout (guest physical, one 64 KiB slot at 0, CS = DS = SS = 0):
//!
//! | range           | contents                                               |
//! |-----------------|--------------------------------------------------------|
//! | 0x0000..0x0400  | real-mode IVT (256 vectors, `offset:segment`)           |
//! | 0x0400..0x0600  | one stub per vector 0..31 (reports an unexpected fault) |
//! | 0x0600..0x0700  | the #GP (vector 13) handler                             |
//! | 0x1000..        | the program                                             |
//! | ..0x8000        | stack (grows down from [`STACK_TOP`])                   |
//!
//! The guest reports everything it sees through port I/O, so the VMM checks
//! the guest's own view rather than its bookkeeping:
//!
//! * RDMSR: `OUT` [`PORT_VALUE_LO`] (EAX), [`PORT_VALUE_HI`] (EDX),
//!   [`PORT_INDEX`] (ECX), then [`PORT_READ_STATUS`] (0 = ok, 1 = #GP taken).
//! * WRMSR: `OUT` [`PORT_INDEX`] (ECX), then [`PORT_WRITE_STATUS`].
//! * end of program: `OUT` [`PORT_DONE`], then `HLT`.
//! * an exception other than #GP: `OUT` [`PORT_UNEXPECTED`] with the vector,
//!   then `HLT`.
//!
//! The #GP handler sets BL = 1 and advances the saved IP by 2 (RDMSR and
//! WRMSR are both two-byte instructions), so the program continues.

/// Guest physical address of the program.
pub const CODE_START: u64 = 0x1000;
/// Initial SP.
pub const STACK_TOP: u64 = 0x8000;
/// Size of the guest memory slot.
pub const MEM_SIZE: usize = 0x10000;

/// Low 32 bits of a value read (32-bit OUT).
pub const PORT_VALUE_LO: u16 = 0x10;
/// High 32 bits of a value read (32-bit OUT).
pub const PORT_VALUE_HI: u16 = 0x11;
/// Status of a RDMSR (8-bit OUT): 0 = value valid, 1 = #GP taken.
pub const PORT_READ_STATUS: u16 = 0x12;
/// Status of a WRMSR (8-bit OUT): 0 = accepted, 1 = #GP taken.
pub const PORT_WRITE_STATUS: u16 = 0x13;
/// The MSR index the guest used (ECX, 32-bit OUT).
pub const PORT_INDEX: u16 = 0x14;
/// The program finished (8-bit OUT).
pub const PORT_DONE: u16 = 0x1f;
/// An exception other than #GP was taken; the byte is the vector.
pub const PORT_UNEXPECTED: u16 = 0xe1;

const GP_VECTOR: usize = 13;
const STUBS: usize = 0x400;
const STUB_SIZE: usize = 8;
const GP_HANDLER: usize = 0x600;

/// One step of the guest program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `RDMSR` with ECX = index.
    Read(u32),
    /// `WRMSR` with ECX = index, EDX:EAX = value.
    Write(u32, u64),
}

impl Command {
    /// The MSR index this command accesses.
    pub fn index(&self) -> u32 {
        match *self {
            Command::Read(i) | Command::Write(i, _) => i,
        }
    }
}

impl core::fmt::Display for Command {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Command::Read(i) => write!(f, "rdmsr {i:#010x}"),
            Command::Write(i, v) => write!(f, "wrmsr {i:#010x} <- {v:#x}"),
        }
    }
}

/// Parses a number in decimal or `0x` hexadecimal; `_` separators are allowed.
pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else {
        s.parse().ok()
    }
}

/// Like [`parse_u64`], limited to 32 bits.
pub fn parse_u32(s: &str) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

struct Asm(Vec<u8>);

impl Asm {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    /// `mov r32, imm32` (0x66 prefix in 16-bit code); `op` is 0xb8 + reg.
    fn mov_imm32(&mut self, op: u8, imm: u32) {
        self.bytes(&[0x66, op]);
        self.bytes(&imm.to_le_bytes());
    }
    /// `out imm8, eax`.
    fn out_eax(&mut self, port: u16) {
        self.bytes(&[0x66, 0xe7, port as u8]);
    }
    /// `out imm8, al`.
    fn out_al(&mut self, port: u16) {
        self.bytes(&[0xe6, port as u8]);
    }
}

const XOR_BX_BX: [u8; 2] = [0x31, 0xdb];
const MOV_AL_BL: [u8; 2] = [0x88, 0xd8];
const MOV_EAX_EDX: [u8; 3] = [0x66, 0x89, 0xd0];
const MOV_EAX_ECX: [u8; 3] = [0x66, 0x89, 0xc8];
const RDMSR: [u8; 2] = [0x0f, 0x32];
const WRMSR: [u8; 2] = [0x0f, 0x30];
const MOV_EAX: u8 = 0xb8;
const MOV_ECX: u8 = 0xb9;
const MOV_EDX: u8 = 0xba;
const HLT: u8 = 0xf4;
const CLI: u8 = 0xfa;

/// Assembles the program for `commands` (without the IVT and handlers).
pub fn assemble(commands: &[Command]) -> Vec<u8> {
    let mut a = Asm(Vec::new());
    a.bytes(&[CLI]);
    for cmd in commands {
        // BL is the "#GP taken" flag, set by the handler.
        a.bytes(&XOR_BX_BX);
        // The whole ECX is loaded; nothing in real mode can set the upper
        // half of RCX and the VMM starts the vCPU with RCX = 0.
        a.mov_imm32(MOV_ECX, cmd.index());
        match *cmd {
            Command::Read(_) => {
                a.bytes(&RDMSR);
                a.out_eax(PORT_VALUE_LO);
                a.bytes(&MOV_EAX_EDX);
                a.out_eax(PORT_VALUE_HI);
                a.bytes(&MOV_EAX_ECX);
                a.out_eax(PORT_INDEX);
                a.bytes(&MOV_AL_BL);
                a.out_al(PORT_READ_STATUS);
            }
            Command::Write(_, value) => {
                a.mov_imm32(MOV_EAX, value as u32);
                a.mov_imm32(MOV_EDX, (value >> 32) as u32);
                a.bytes(&WRMSR);
                a.bytes(&MOV_EAX_ECX);
                a.out_eax(PORT_INDEX);
                a.bytes(&MOV_AL_BL);
                a.out_al(PORT_WRITE_STATUS);
            }
        }
    }
    a.out_al(PORT_DONE);
    a.bytes(&[HLT]);
    a.0
}

/// The #GP handler: flag it in BL, skip the faulting 2-byte RDMSR/WRMSR.
fn gp_handler() -> Vec<u8> {
    vec![
        0xb3, 0x01, // mov bl, 1
        0x55, // push bp
        0x89, 0xe5, // mov bp, sp
        0x83, 0x46, 0x02, 0x02, // add word [bp+2], 2   (saved IP)
        0x5d, // pop bp
        0xcf, // iret
    ]
}

/// Error building the guest image.
#[derive(Debug, PartialEq, Eq)]
pub struct TooBig(pub usize);

/// Builds the whole 64 KiB guest memory image for `commands`.
pub fn build_image(commands: &[Command]) -> Result<Vec<u8>, TooBig> {
    let mut mem = vec![0u8; MEM_SIZE];
    let code = assemble(commands);
    let start = CODE_START as usize;
    // Leave at least 1 KiB of stack below STACK_TOP.
    let limit = STACK_TOP as usize - 0x400;
    if start + code.len() > limit {
        return Err(TooBig(commands.len()));
    }
    mem[start..start + code.len()].copy_from_slice(&code);

    // Vectors 0..31 each get a stub: mov al, vector; out PORT_UNEXPECTED, al;
    // hlt. Vectors above 31 are never raised by this program.
    for v in 0..32usize {
        let stub = STUBS + v * STUB_SIZE;
        let target = if v == GP_VECTOR { GP_HANDLER } else { stub };
        mem[v * 4..v * 4 + 2].copy_from_slice(&(target as u16).to_le_bytes());
        mem[v * 4 + 2..v * 4 + 4].copy_from_slice(&0u16.to_le_bytes());
        let bytes = [0xb0, v as u8, 0xe6, PORT_UNEXPECTED as u8, HLT];
        mem[stub..stub + bytes.len()].copy_from_slice(&bytes);
    }
    let gp = gp_handler();
    mem[GP_HANDLER..GP_HANDLER + gp.len()].copy_from_slice(&gp);
    Ok(mem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_sets_whole_ecx() {
        let code = assemble(&[Command::Read(0xc001_0015)]);
        // cli; xor bx,bx; mov ecx, imm32; rdmsr
        assert_eq!(
            &code[..11],
            &[
                0xfa, 0x31, 0xdb, 0x66, 0xb9, 0x15, 0x00, 0x01, 0xc0, 0x0f, 0x32
            ]
        );
        assert_eq!(&code[code.len() - 3..], &[0xe6, PORT_DONE as u8, 0xf4]);
    }

    #[test]
    fn write_loads_edx_eax() {
        let code = assemble(&[Command::Write(0x10, 0x1122_3344_5566_7788)]);
        let w = &code[3..];
        assert_eq!(&w[..6], &[0x66, 0xb9, 0x10, 0, 0, 0]);
        assert_eq!(&w[6..12], &[0x66, 0xb8, 0x88, 0x77, 0x66, 0x55]);
        assert_eq!(&w[12..18], &[0x66, 0xba, 0x44, 0x33, 0x22, 0x11]);
        assert_eq!(&w[18..20], &[0x0f, 0x30]);
    }

    #[test]
    fn ivt_points_gp_to_handler() {
        let mem = build_image(&[]).expect("image");
        assert_eq!(&mem[13 * 4..13 * 4 + 4], &[0x00, 0x06, 0, 0]);
        assert_eq!(&mem[6 * 4..6 * 4 + 4], &[0x30, 0x04, 0, 0]);
        assert_eq!(mem[0x600], 0xb3);
    }

    #[test]
    fn too_many_commands() {
        let cmds = vec![Command::Read(0); 4000];
        assert!(build_image(&cmds).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32("0x35"), Some(0x35));
        assert_eq!(parse_u32("53"), Some(53));
        assert_eq!(parse_u32("0xc001_0015"), Some(0xc001_0015));
        assert_eq!(parse_u32("0x1_0000_0000"), None);
        assert_eq!(parse_u64("zz"), None);
    }
}
