//! A loopback TCP proxy between clients and a server, that a test can cut
//! (close connections at both ends, as a network failure the kernel
//! reports) or freeze (stop forwarding while the sockets stay open, as a
//! silent partition). New connections after either flow normally. Two std
//! threads per connection. Used by the tests and by the stress harness's
//! server mode.

#![allow(dead_code)] // each user takes a different subset

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub struct Proxy {
    port: u16,
    links: Arc<Mutex<Vec<Link>>>,
    /// Connections accepted, including those the server refused (closed
    /// at once): how often clients tried.
    accepted: Arc<AtomicU64>,
    /// Reads held back by frozen connections so far.
    held_back: Arc<AtomicU64>,
}

/// One open connection: both sockets, and whether it is frozen.
struct Link {
    id: u64,
    client: TcpStream,
    server: TcpStream,
    frozen: Arc<AtomicBool>,
}

impl Link {
    fn cut(&self) {
        // Either may be closed already; the other side still gets cut.
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

type Links = Arc<Mutex<Vec<Link>>>;

fn lock(links: &Links) -> MutexGuard<'_, Vec<Link>> {
    links.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let links = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicU64::new(0));
        let held_back = Arc::new(AtomicU64::new(0));
        let (table, count, held) = (Arc::clone(&links), Arc::clone(&accepted), held_back.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let id = count.fetch_add(1, Ordering::SeqCst);
                // A server that is down: the client's socket is closed.
                let _ = forward(client, upstream, id, &table, &held);
            }
        });
        Ok(Proxy { port, links, accepted, held_back })
    }

    /// How many reads frozen connections have held back so far: something
    /// was sent into the silence.
    pub fn held_back(&self) -> u64 {
        self.held_back.load(Ordering::SeqCst)
    }

    /// A proxy to the server on `port` of 127.0.0.1.
    pub fn to_local(port: u16) -> Proxy {
        Proxy::start(SocketAddr::from(([127, 0, 0, 1], port))).expect("start the proxy")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections clients opened so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Cuts every open connection.
    pub fn cut(&self) {
        for link in lock(&self.links).drain(..) {
            link.cut();
        }
    }

    /// Cuts the open connection `pick` chooses from how many there are;
    /// false if there was none.
    pub fn cut_one(&self, pick: impl FnOnce(usize) -> usize) -> bool {
        let mut links = lock(&self.links);
        if links.is_empty() {
            return false;
        }
        let at = pick(links.len()) % links.len();
        links.swap_remove(at).cut();
        true
    }

    /// Stops forwarding on every open connection; the sockets stay open,
    /// so neither end hears of it.
    pub fn freeze(&self) {
        for link in lock(&self.links).iter() {
            link.frozen.store(true, Ordering::SeqCst);
        }
    }

    /// Forwards again on frozen connections, including what was held back
    /// (and a close one end made meanwhile).
    pub fn thaw(&self) {
        for link in lock(&self.links).iter() {
            link.frozen.store(false, Ordering::SeqCst);
        }
    }
}

/// Connects to `upstream` for `client` and starts the two pumps; the link
/// leaves the table when either side ends or it is cut.
fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    id: u64,
    links: &Links,
    held_back: &Arc<AtomicU64>,
) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let frozen = Arc::new(AtomicBool::new(false));
    let pumps =
        [(client.try_clone()?, server.try_clone()?), (server.try_clone()?, client.try_clone()?)];
    lock(links).push(Link { id, client, server, frozen: Arc::clone(&frozen) });
    for (from, to) in pumps {
        let (links, frozen, held_back) =
            (Arc::clone(links), Arc::clone(&frozen), held_back.clone());
        std::thread::spawn(move || {
            pump(from, to, &frozen, &held_back);
            let mut links = lock(&links);
            if let Some(at) = links.iter().position(|link| link.id == id) {
                links.swap_remove(at).cut();
            }
        });
    }
    Ok(())
}

/// Copies `from` to `to` until either ends, holding data (and the end of
/// the stream) back while frozen.
fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool, held_back: &AtomicU64) {
    let mut buffer = [0; 16 * 1024];
    loop {
        let read = from.read(&mut buffer).unwrap_or(0);
        if frozen.load(Ordering::SeqCst) {
            held_back.fetch_add(1, Ordering::SeqCst);
        }
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
