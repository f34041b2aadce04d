//! A loopback TCP proxy between a client and a server, that a test can cut
//! (close every connection at both ends, as a network failure the kernel
//! reports) or freeze (stop forwarding while the sockets stay open, as a
//! silent partition). New connections after either flow normally.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Proxy {
    pub port: u16,
    links: Arc<Mutex<Vec<Link>>>,
    /// Connections accepted, including those the server refused (they are
    /// closed at once): how often a client tried.
    accepted: Arc<AtomicUsize>,
}

/// One proxied connection: both sockets, and whether it is frozen.
struct Link {
    client: TcpStream,
    server: TcpStream,
    frozen: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:target`.
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let links = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (new_links, counted) = (links.clone(), accepted.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                new_links.lock().expect("links").push(link(client, server));
            }
        });
        Proxy { port, links, accepted }
    }

    /// How many connections clients have opened so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes every connection made so far, at both ends.
    pub fn cut(&self) {
        for link in self.links.lock().expect("links").drain(..) {
            let _ = link.client.shutdown(Shutdown::Both);
            let _ = link.server.shutdown(Shutdown::Both);
        }
    }

    /// Stops forwarding on every connection made so far; the sockets stay
    /// open, so neither end hears of it.
    pub fn freeze(&self) {
        for link in self.links.lock().expect("links").iter() {
            link.frozen.store(true, Ordering::SeqCst);
        }
    }

    /// Forwards again on frozen connections, including what was held back
    /// (and a close one end made meanwhile).
    pub fn thaw(&self) {
        for link in self.links.lock().expect("links").iter() {
            link.frozen.store(false, Ordering::SeqCst);
        }
    }
}

/// Starts the two pumps of a new connection.
fn link(client: TcpStream, server: TcpStream) -> Link {
    let frozen = Arc::new(AtomicBool::new(false));
    let ends = |a: &TcpStream, b: &TcpStream| {
        (a.try_clone().expect("clone socket"), b.try_clone().expect("clone socket"))
    };
    let (from, to) = ends(&client, &server);
    std::thread::spawn({
        let frozen = frozen.clone();
        move || pump(from, to, &frozen)
    });
    let (from, to) = ends(&server, &client);
    std::thread::spawn({
        let frozen = frozen.clone();
        move || pump(from, to, &frozen)
    });
    Link { client, server, frozen }
}

/// Copies `from` to `to` until either ends, holding data (and the end of
/// the stream) back while frozen.
fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool) {
    let mut buffer = [0; 16 * 1024];
    loop {
        let read = from.read(&mut buffer).unwrap_or(0);
        while frozen.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if read == 0 || to.write_all(&buffer[..read]).is_err() {
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
            return;
        }
    }
}
