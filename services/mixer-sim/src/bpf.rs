//! The socket filter that makes a black hole: a classic BPF program, attached to every pod's
//! and front's listening socket, that drops every packet whose IP source is a blackholed
//! client. The kernel runs it before the TCP handshake, so a cut client's SYN is never
//! answered and its connect times out, as across a real partition. Unprivileged
//! (`SO_ATTACH_FILTER`), per socket, and gone with the socket: nothing on the host changes.
//!
//! The program reads the IP header through the kernel's network-header offset
//! (`SKF_NET_OFF`), so it works whatever the transport header in front of it.

use std::net::IpAddr;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// The opcodes used, as `linux/filter.h` composes them (BPF_LD and BPF_W are 0).
const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const LD_B_ABS: u16 = 0x10 | 0x20; // BPF_LD | BPF_B | BPF_ABS
const RSH_K: u16 = 0x04 | 0x70; // BPF_ALU | BPF_RSH | BPF_K
const JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
/// `SKF_NET_OFF`: loads relative to the network (IP) header.
const NET: u32 = (-0x0010_0000_i32) as u32;
/// Keep the whole packet / drop it.
const ACCEPT: u32 = u32::MAX;
const DROP: u32 = 0;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// A program that drops packets from any of `sources` and accepts the rest; `sources` holds at
/// most [`crate::net_fault::MAX_CUT_CLIENTS`] addresses (so every jump fits its byte).
pub(crate) fn drop_sources(sources: &[IpAddr]) -> Vec<Insn> {
    let v4: Vec<u32> = sources
        .iter()
        .filter_map(|ip| match ip.to_canonical() {
            IpAddr::V4(v4) => Some(u32::from(v4)),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6: Vec<[u32; 4]> = sources
        .iter()
        .filter_map(|ip| match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let o = v6.octets();
                let word = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
                Some([word(0), word(4), word(8), word(12)])
            }
            IpAddr::V4(_) => None,
        })
        .collect();
    // The IPv4 block: load the source once, then per address `jeq; ret drop`, then accept.
    let v4_len = 1 + 2 * v4.len() + 1;
    let mut program = vec![
        insn(LD_B_ABS, 0, 0, NET),
        insn(RSH_K, 0, 0, 4),
        // Version 4: fall into the IPv4 block; otherwise jump over it.
        insn(JEQ_K, 0, u8::try_from(v4_len).unwrap_or(u8::MAX), 4),
        insn(LD_W_ABS, 0, 0, NET.wrapping_add(12)),
    ];
    for address in v4 {
        program.push(insn(JEQ_K, 0, 1, address));
        program.push(insn(RET_K, 0, 0, DROP));
    }
    program.push(insn(RET_K, 0, 0, ACCEPT));
    // The IPv6 block: per address, four words of the source at 8..24, each mismatch skipping
    // to the next address.
    for words in v6 {
        for (i, word) in words.iter().enumerate() {
            let offset = NET.wrapping_add(8 + 4 * i as u32);
            // From this word's `jeq` to the next address: the rest of this address's words and
            // its `ret drop`.
            let to_next = u8::try_from(2 * (3 - i) + 1).unwrap_or(u8::MAX);
            program.push(insn(LD_W_ABS, 0, 0, offset));
            program.push(insn(JEQ_K, 0, to_next, *word));
        }
        program.push(insn(RET_K, 0, 0, DROP));
    }
    program.push(insn(RET_K, 0, 0, ACCEPT));
    program
}

/// Attaches `program` to the socket (replacing any filter), or removes the filter when `None`.
#[cfg(target_os = "linux")]
pub(crate) fn attach(socket: &impl std::os::fd::AsFd, program: Option<&[Insn]>) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(socket);
    match program {
        Some(program) => {
            let filters: Vec<socket2::SockFilter> =
                program.iter().map(|i| socket2::SockFilter::new(i.code, i.jt, i.jf, i.k)).collect();
            socket.attach_filter(&filters)
        }
        None => match socket.detach_filter() {
            // ENOENT: there was none.
            Err(error) if error.raw_os_error() == Some(2) => Ok(()),
            other => other,
        },
    }
}

/// Elsewhere there is no socket filter; cut clients are then held after `accept` instead.
#[cfg(not(target_os = "linux"))]
pub(crate) fn attach<S>(_socket: &S, program: Option<&[Insn]>) -> std::io::Result<()> {
    match program {
        Some(_) => Err(std::io::Error::other("socket filters need Linux")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a program the way the kernel does, on an IP header; `None` for a load outside it
    /// (which the kernel treats as a drop) or a program that runs off its end.
    fn run(program: &[Insn], ip_header: &[u8]) -> Option<u32> {
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = program.get(pc)?;
            pc += 1;
            match i.code {
                LD_B_ABS => a = u32::from(*ip_header.get(i.k.wrapping_sub(NET) as usize)?),
                LD_W_ABS => {
                    let at = i.k.wrapping_sub(NET) as usize;
                    a = u32::from_be_bytes(ip_header.get(at..at + 4)?.try_into().ok()?);
                }
                RSH_K => a >>= i.k,
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                RET_K => return Some(i.k),
                _ => return None,
            }
        }
    }

    fn v4_header(source: [u8; 4]) -> Vec<u8> {
        let mut header = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        header.extend_from_slice(&source);
        header.extend_from_slice(&[127, 0, 0, 1]);
        header
    }

    fn v6_header(source: &str) -> Vec<u8> {
        let mut header = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        header.extend_from_slice(&source.parse::<std::net::Ipv6Addr>().expect("an address").octets());
        header.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        header
    }

    #[test]
    fn drops_exactly_the_listed_sources() {
        let cut: Vec<IpAddr> = ["127.0.0.3", "10.1.2.3", "::ffff:127.0.0.9", "fd00::7", "::1"]
            .iter()
            .map(|s| s.parse().expect("ip"))
            .collect();
        let program = drop_sources(&cut);
        for (header, expected) in [
            (v4_header([127, 0, 0, 3]), DROP),
            (v4_header([10, 1, 2, 3]), DROP),
            (v4_header([127, 0, 0, 9]), DROP),
            (v4_header([127, 0, 0, 1]), ACCEPT),
            (v4_header([127, 0, 0, 2]), ACCEPT),
            (v6_header("fd00::7"), DROP),
            (v6_header("::1"), DROP),
            (v6_header("fd00::8"), ACCEPT),
            (v6_header("::2"), ACCEPT),
            (v6_header("fd00::1:7"), ACCEPT),
        ] {
            assert_eq!(run(&program, &header), Some(expected), "{header:?}");
        }
        let none = drop_sources(&[]);
        assert_eq!(run(&none, &v4_header([127, 0, 0, 3])), Some(ACCEPT));
        assert_eq!(run(&none, &v6_header("::1")), Some(ACCEPT));
    }

    #[test]
    fn the_largest_cut_keeps_every_jump_in_range() {
        let many: Vec<IpAddr> =
            (0..crate::net_fault::MAX_CUT_CLIENTS as u8).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        let program = drop_sources(&many);
        assert!(program[2].jf as usize == 1 + 2 * many.len() + 1, "the version jump skips the IPv4 block");
        assert_eq!(run(&program, &v4_header([10, 0, 0, 63])), Some(DROP));
        assert_eq!(run(&program, &v4_header([10, 0, 0, 64])), Some(ACCEPT));
    }
}
