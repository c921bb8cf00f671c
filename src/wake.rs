//! A wake-up pipe from the Tokio runtime to the asyncio event loop.
//!
//! Handing a batch to Python through an awaitable makes a runtime thread take the GIL,
//! and while the event loop runs Python code that thread waits for it (up to the
//! interpreter's 5 ms switch interval), stalling every Redis call of the worker. Instead
//! the runtime writes a byte to this pipe, without the GIL, and the event loop (which
//! watches the read end with `add_reader`) takes the batch on its own thread.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::errors::JqError;

pub struct WakePipe {
    read_fd: i32,
    write_fd: i32,
    /// Set while a byte is in the pipe, so that a burst of deliveries writes one byte.
    signaled: AtomicBool,
}

impl WakePipe {
    pub fn new() -> Result<Self, JqError> {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(JqError::InvalidState(format!(
                "cannot create the worker's wake-up pipe: {}",
                std::io::Error::last_os_error()
            )));
        }
        for fd in fds {
            // SAFETY: `fd` was just returned by pipe(); these calls only change its flags.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(Self {
            read_fd: fds[0],
            write_fd: fds[1],
            signaled: AtomicBool::new(false),
        })
    }

    /// The descriptor the event loop watches.
    pub fn read_fd(&self) -> i32 {
        self.read_fd
    }

    /// Wake the event loop, unless a wake-up is already pending.
    pub fn signal(&self) {
        if !self.signaled.swap(true, Ordering::SeqCst) {
            let byte = 1u8;
            // SAFETY: writes one byte from a live local to our own descriptor. A full pipe
            // (EAGAIN) already holds a pending wake-up, so the result needs no check.
            unsafe {
                libc::write(self.write_fd, (&byte as *const u8).cast(), 1);
            }
        }
    }

    /// Consume pending wake-ups; call before taking what they announce, so that anything
    /// delivered afterwards signals again. The pipe is emptied before the flag is reset:
    /// the other order could swallow the byte of a signal made in between and leave the
    /// flag set with an empty pipe, and every later signal would then be skipped.
    pub fn clear(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a live local buffer of the given size from our descriptor.
        while unsafe { libc::read(self.read_fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        self.signaled.store(false, Ordering::SeqCst);
    }
}

impl Drop for WakePipe {
    fn drop(&mut self) {
        // SAFETY: both descriptors are owned by this pipe and closed only here.
        unsafe {
            libc::close(self.read_fd);
            libc::close(self.write_fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    /// A sender thread counts deliveries and signals; the receiver waits on the pipe as
    /// the event loop does, then clears and takes. A lost wake-up leaves the receiver
    /// waiting while deliveries are pending: poll() then times out and the test fails.
    #[test]
    fn no_wake_up_is_lost_under_a_racing_sender() {
        const DELIVERIES: u64 = 200_000;
        let pipe = Arc::new(WakePipe::new().unwrap());
        let sent = Arc::new(AtomicU64::new(0));
        let sender = {
            let (pipe, sent) = (pipe.clone(), sent.clone());
            std::thread::spawn(move || {
                for _ in 0..DELIVERIES {
                    sent.fetch_add(1, Ordering::SeqCst);
                    pipe.signal();
                }
            })
        };
        let mut taken = 0;
        while taken < DELIVERIES {
            let mut watch = libc::pollfd {
                fd: pipe.read_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: polls one live pollfd for at most 2 s.
            let ready = unsafe { libc::poll(&mut watch, 1, 2000) };
            assert_eq!(ready, 1, "no wake-up with {} deliveries pending", {
                sent.load(Ordering::SeqCst) - taken
            });
            pipe.clear();
            taken = sent.load(Ordering::SeqCst);
        }
        sender.join().unwrap();
    }
}
