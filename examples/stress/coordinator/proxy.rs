//! Server mode: a loopback TCP proxy between the workers and the lock
//! server that can cut any connection through it (both sides closed at
//! once, as a failing network or middlebox would), two std threads per
//! connection.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::rng::Rng;

pub struct Proxy {
    port: u16,
    links: Arc<Mutex<Vec<Link>>>,
    accepted: Arc<AtomicU64>,
}

/// One connection through the proxy: the worker's side and the server's.
struct Link {
    id: u64,
    client: TcpStream,
    server: TcpStream,
}

impl Link {
    fn cut(&self) {
        // Either may be closed already; the other side still gets cut.
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let links = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicU64::new(0));
        let (table, count) = (Arc::clone(&links), Arc::clone(&accepted));
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let id = count.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = forward(client, upstream, id, &table) {
                    eprintln!("stress: proxy: cannot reach the server: {e}");
                }
            }
        });
        Ok(Proxy { port, links, accepted })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections made through the proxy so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Cuts a random open connection; false if there was none.
    pub fn cut_random(&self, rng: &mut Rng) -> bool {
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        if links.is_empty() {
            return false;
        }
        let at = rng.index(links.len());
        let link = links.swap_remove(at);
        link.cut();
        true
    }
}

/// Connects to `upstream` for `client` and pumps both ways on two threads;
/// the connection ends (both sides closed) when either side ends or it is
/// cut.
fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    id: u64,
    links: &Arc<Mutex<Vec<Link>>>,
) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let link = Link { id, client: client.try_clone()?, server: server.try_clone()? };
    links.lock().unwrap_or_else(PoisonError::into_inner).push(link);
    let pumps = [(client.try_clone()?, server.try_clone()?), (server, client)];
    for (mut from, mut to) in pumps {
        let links = Arc::clone(links);
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let mut links = links.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(at) = links.iter().position(|link| link.id == id) {
                links.swap_remove(at).cut();
            } else {
                // Cut already, or ended by the other pump.
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
            }
        });
    }
    Ok(())
}
