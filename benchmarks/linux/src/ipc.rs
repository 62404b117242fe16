//! Cross-address-space calls between two processes: a Unix-socket RPC (the
//! row's figure, the closest analogue of the socket + RPC path the SPIN
//! paper measured on DEC OSF/1) and a pipe round trip (printed as an extra).

use crate::sys;
use benchmarks::line::ExtraLine;
use benchmarks::suite::Outcome;
use benchmarks::{Op, measure};

/// A pair of file descriptors the parent writes requests to and reads
/// replies from; the child echoes until the request side closes.
struct Channel {
    request: libc::c_int,
    reply: libc::c_int,
    child: libc::pid_t,
}

impl Channel {
    fn call(&self) {
        let mut word = [7u8; 8];
        // SAFETY: valid buffers of 8 bytes on open descriptors.
        unsafe {
            libc::write(self.request, word.as_ptr() as *const libc::c_void, 8);
            let mut got = 0;
            while got < 8 {
                let n = libc::read(self.reply, word[got..].as_mut_ptr() as *mut libc::c_void, 8 - got);
                if n <= 0 {
                    break;
                }
                got += n as usize;
            }
        }
    }

    fn close(self) {
        // SAFETY: closing our descriptors makes the child's read return 0, and it exits.
        unsafe {
            libc::close(self.request);
            if self.reply != self.request {
                libc::close(self.reply);
            }
        }
        sys::wait_ok(self.child);
    }
}

/// The server side: echo 8-byte requests until EOF.
fn serve(read_fd: libc::c_int, write_fd: libc::c_int) -> ! {
    let mut buf = [0u8; 8];
    loop {
        // SAFETY: valid 8-byte buffer, open descriptors.
        let n = unsafe { libc::read(read_fd, buf.as_mut_ptr() as *mut libc::c_void, 8) };
        if n <= 0 {
            sys::exit_now(0);
        }
        // SAFETY: as above.
        unsafe { libc::write(write_fd, buf.as_ptr() as *const libc::c_void, n as usize) };
    }
}

fn socket_channel() -> Channel {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
    match sys::fork() {
        0 => {
            // SAFETY: closing the parent's end in the child.
            unsafe { libc::close(fds[0]) };
            serve(fds[1], fds[1])
        }
        child => {
            // SAFETY: closing the child's end in the parent.
            unsafe { libc::close(fds[1]) };
            Channel { request: fds[0], reply: fds[0], child }
        }
    }
}

fn pipe_channel() -> Channel {
    let (mut to_child, mut to_parent) = ([0; 2], [0; 2]);
    // SAFETY: each array has room for two descriptors.
    unsafe {
        libc::pipe(to_child.as_mut_ptr());
        libc::pipe(to_parent.as_mut_ptr());
    }
    match sys::fork() {
        0 => {
            // SAFETY: closing the ends the child does not use.
            unsafe {
                libc::close(to_child[1]);
                libc::close(to_parent[0]);
            }
            serve(to_child[0], to_parent[1])
        }
        child => {
            // SAFETY: closing the ends the parent does not use.
            unsafe {
                libc::close(to_child[0]);
                libc::close(to_parent[1]);
            }
            Channel { request: to_child[1], reply: to_parent[0], child }
        }
    }
}

pub fn cross_address_space_call(op: &'static Op, iters: u32, runs: u32) -> Outcome {
    let pipe = pipe_channel();
    let sample = measure(iters, runs, || pipe.call());
    pipe.close();
    println!("{}", ExtraLine { kernel: "linux", op, label: "pipe round trip between two processes", sample });
    let socket = socket_channel();
    let sample = measure(iters, runs, || socket.call());
    socket.close();
    Outcome::Measured(sample)
}
