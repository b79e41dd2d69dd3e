//! The HTTP/1.1 server under `lakeflow serve` and `lakeflow docs serve`: one request per
//! connection, read within limits a client cannot lift, answered with a fixed-length or a
//! streamed (chunked) body.
//!
//! - A request head larger than [`Limits::head`] gets 431, one that does not arrive within
//!   [`Limits::timeout`] 408, a malformed one 400 (parsed by `httparse`); a body is read only
//!   when the handler asks, up to the size it names (413 beyond).
//! - At most [`Limits::connections`] connections are served at once; the next get 503.
//! - A streamed body that fails midway is not ended: the connection closes without the last
//!   chunk, so the client sees a cut response, never a short one that looks whole.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What a client may send and hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of request line and headers.
    pub head: usize,
    /// How long reading or writing may stall.
    pub timeout: Duration,
    /// Connections served at once.
    pub connections: usize,
}

/// The server's certificate and key, when it speaks TLS itself.
pub type Tls = Arc<rustls::ServerConfig>;

/// The TLS configuration of a PEM certificate chain and private key; the message says which
/// file is wrong.
pub fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Result<Tls, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map(Arc::new)
        .map_err(|e| format!("the certificate and key do not make a TLS configuration: {e}"))
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            head: 16 * 1024,
            timeout: Duration::from_secs(30),
            connections: 256,
        }
    }
}

/// One request on its connection, answered once with [`Exchange::respond`].
pub struct Exchange {
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    headers: Vec<(String, String)>,
    /// Body bytes read together with the head.
    early: Vec<u8>,
    stream: Conn,
}

/// A client's connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
        }
    }

    /// Ends a response that went out whole: TLS says so (close_notify), then the writing
    /// side closes, and what the client still sends is read briefly, so closing does not
    /// reset the connection before it has read the response.
    fn finish(&mut self) {
        if let Conn::Tls(t) = self {
            t.conn.send_close_notify();
            let _ = t.flush();
        }
        let tcp = self.tcp();
        let _ = tcp.shutdown(Shutdown::Write);
        let _ = tcp.set_read_timeout(Some(Duration::from_millis(200)));
        let _ = std::io::copy(&mut tcp.take(1 << 20), &mut std::io::sink());
    }

    /// Drops the connection mid-response, without TLS's close_notify: the client sees the
    /// response cut.
    fn abort(&self) {
        let _ = self.tcp().shutdown(Shutdown::Both);
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

impl Exchange {
    /// The path of the target, without its query.
    pub fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or_default()
    }

    /// The value of header `name` (any case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request body, refused with the status to answer when it is longer than `limit`
    /// (413), not sent with a length (411), or does not arrive in time (408).
    pub fn body(&mut self, limit: usize) -> Result<Vec<u8>, u16> {
        if self.header("Transfer-Encoding").is_some() {
            return Err(411);
        }
        let length = match self.header("Content-Length") {
            None => return Ok(Vec::new()),
            Some(v) => v.trim().parse::<usize>().map_err(|_| 400u16)?,
        };
        if length > limit {
            return Err(413);
        }
        // A client that waits to be asked for the body (curl does, past 1 KiB) is asked.
        if self
            .header("Expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
            && self.early.len() < length
        {
            let _ = self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let mut body = std::mem::take(&mut self.early);
        body.truncate(length);
        let mut rest = (&mut self.stream).take((length - body.len()) as u64);
        match rest.read_to_end(&mut body) {
            Ok(_) if body.len() == length => Ok(body),
            Ok(_) => Err(400),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Err(408),
            Err(_) => Err(400),
        }
    }

    /// Sends a response with `body` and its length; Ok when all of it went out. See
    /// [`Exchange::stream`] for the headers added.
    pub fn respond(
        self,
        status: u16,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> std::io::Result<()> {
        // All of it held at once: sent with its length, whatever its size.
        let mut out = self.stream(status, headers);
        out.buf = body;
        out.finish()
    }

    /// Starts a response whose body is written as it is made. The headers given are sent
    /// as they are, with `Content-Length` or `Transfer-Encoding`, `Connection: close` and
    /// `X-Content-Type-Options` added. A body that ends within its first 64 KiB goes out
    /// with its length; a longer one in chunks. A HEAD request gets the headers alone.
    pub fn stream(self, status: u16, headers: &[(&str, &str)]) -> BodyWriter {
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        for (name, value) in headers {
            // A value that would end the header line is left out.
            if !value.contains(['\r', '\n']) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        BodyWriter {
            head_only: self.method == "HEAD",
            conn: Some(self.stream),
            head: Some(head),
            buf: Vec::with_capacity(BLOCK),
        }
    }

    /// Answers with a status and a short JSON or text message.
    pub fn fail(self, status: u16, json: bool) {
        let (kind, body) = if json {
            (
                "application/json",
                serde_json::json!({"error": reason(status)}).to_string(),
            )
        } else {
            (
                "text/plain; charset=utf-8",
                format!("{status} {}\n", reason(status)),
            )
        };
        let _ = self.respond(status, &[("Content-Type", kind)], body.into_bytes());
    }
}

/// A body that goes out in blocks of this size.
const BLOCK: usize = 64 * 1024;

/// The body of a response being written (see [`Exchange::stream`]). Dropped before
/// [`BodyWriter::finish`], it leaves the response cut: the connection closes without the
/// last chunk (or without any answer at all, when nothing was sent yet).
pub struct BodyWriter {
    conn: Option<Conn>,
    /// The status line and headers, until they are sent.
    head: Option<String>,
    head_only: bool,
    buf: Vec<u8>,
}

impl BodyWriter {
    /// Sends the headers (chunked) and what is buffered as a chunk.
    fn send_block(&mut self) -> std::io::Result<()> {
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the response ended"))?;
        let mut out = Vec::with_capacity(self.buf.len() + 512);
        if let Some(head) = self.head.take() {
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n");
        }
        if !self.head_only && !self.buf.is_empty() {
            out.extend_from_slice(format!("{:x}\r\n", self.buf.len()).as_bytes());
            out.extend_from_slice(&self.buf);
            out.extend_from_slice(b"\r\n");
        }
        self.buf.clear();
        conn.write_all(&out)
    }

    /// Ends the response: the rest of the body and its end go out (with the length, if
    /// the headers are not sent yet), and the connection closes.
    pub fn finish(mut self) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(self.buf.len() + 512);
        match self.head.take() {
            Some(head) => {
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(format!("Content-Length: {}\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n", self.buf.len()).as_bytes());
                if !self.head_only {
                    out.extend_from_slice(&self.buf);
                }
            }
            None if !self.head_only => {
                if !self.buf.is_empty() {
                    out.extend_from_slice(format!("{:x}\r\n", self.buf.len()).as_bytes());
                    out.extend_from_slice(&self.buf);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            None => {}
        }
        let mut conn = self
            .conn
            .take()
            .ok_or_else(|| std::io::Error::other("the response ended"))?;
        conn.write_all(&out)?;
        conn.flush()?;
        conn.finish();
        Ok(())
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BLOCK {
            self.send_block()?;
        }
        Ok(data.len())
    }

    /// Blocks go out as they fill; a flush sends nothing early.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        if let Some(conn) = &self.conn {
            conn.abort();
        }
    }
}

/// Accepts connections on `listener` until the process ends, serves each on a worker of a
/// pool (TLS when `tls` is given), and hands every well-formed request to `handler`.
pub fn serve(
    listener: TcpListener,
    limits: Limits,
    tls: Option<Tls>,
    handler: Arc<dyn Fn(Exchange) + Send + Sync>,
) {
    // Connections wait in a queue for a worker; a worker is started whenever none is idle,
    // up to one per allowed connection, and then kept for the next ones.
    let open = Arc::new(AtomicUsize::new(0));
    let idle = Arc::new(AtomicUsize::new(0));
    let mut workers = 0usize;
    let (queue, waiting) = std::sync::mpsc::channel::<TcpStream>();
    let waiting = Arc::new(std::sync::Mutex::new(waiting));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(limits.timeout));
        let _ = stream.set_write_timeout(Some(limits.timeout));
        let _ = stream.set_nodelay(true);
        if open.fetch_add(1, Ordering::SeqCst) >= limits.connections {
            open.fetch_sub(1, Ordering::SeqCst);
            // Refused on the spot, without waiting on the client (or a TLS handshake).
            let mut s = stream;
            if tls.is_none() {
                let _ = s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
            continue;
        }
        if idle.load(Ordering::SeqCst) == 0 && workers < limits.connections {
            let (open, idle, waiting, handler, tls) = (
                open.clone(),
                idle.clone(),
                waiting.clone(),
                handler.clone(),
                tls.clone(),
            );
            let spawned = std::thread::Builder::new().spawn(move || {
                loop {
                    idle.fetch_add(1, Ordering::SeqCst);
                    let next = waiting.lock().map(|w| w.recv());
                    idle.fetch_sub(1, Ordering::SeqCst);
                    let Ok(Ok(stream)) = next else { return };
                    serve_one(stream, &limits, tls.as_ref(), handler.as_ref());
                    open.fetch_sub(1, Ordering::SeqCst);
                }
            });
            if spawned.is_ok() {
                workers += 1;
            }
        }
        if queue.send(stream).is_err() {
            open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Reads and answers the one request of a connection.
fn serve_one(
    stream: TcpStream,
    limits: &Limits,
    tls: Option<&Tls>,
    handler: &(dyn Fn(Exchange) + Send + Sync),
) {
    let conn = match tls {
        None => Some(Conn::Plain(stream)),
        Some(config) => rustls::ServerConnection::new(config.clone())
            .ok()
            .map(|c| Conn::Tls(Box::new(rustls::StreamOwned::new(c, stream)))),
    };
    if let Some(conn) = conn {
        match read_request(conn, limits) {
            Ok(exchange) => handler(exchange),
            Err((conn, status)) => refuse(conn, status),
        }
    }
}

/// Answers a request that could not be read (or served) with `status` alone.
fn refuse(stream: Conn, status: u16) {
    // A TLS client that never finished its handshake cannot be answered (rustls would wait
    // for it to go on).
    if let Conn::Tls(t) = &stream
        && t.conn.is_handshaking()
    {
        return;
    }
    let exchange = Exchange {
        method: String::new(),
        target: String::new(),
        headers: Vec::new(),
        early: Vec::new(),
        stream,
    };
    exchange.fail(status, false);
}

/// Reads a request's head within the limits.
fn read_request(mut stream: Conn, limits: &Limits) -> Result<Exchange, (Conn, u16)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(end)) => {
                if end > limits.head {
                    return Err((stream, 431));
                }
                let method = request.method.unwrap_or_default().to_string();
                let target = request.path.unwrap_or_default().to_string();
                let headers = request
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let early = buf[end..].to_vec();
                return Ok(Exchange {
                    method,
                    target,
                    headers,
                    early,
                    stream,
                });
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Err((stream, 431)),
            Err(_) => return Err((stream, 400)),
        }
        if buf.len() > limits.head {
            return Err((stream, 431));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err((stream, 400)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err((stream, 408));
            }
            Err(_) => return Err((stream, 400)),
        }
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            serve(
                listener,
                Limits::default(),
                None,
                Arc::new(|mut e: Exchange| {
                    // Streams of 100,000 bytes, whole or cut after 70,000, or of 25.
                    let (size, cut) = match e.path() {
                        "/cut" => (100_000, Some(70_000)),
                        "/whole" => (100_000, None),
                        "/small" => (25, None),
                        _ => {
                            match e.body(8) {
                                Ok(b) => {
                                    let _ = e.respond(200, &[("Content-Type", "text/plain")], b);
                                }
                                Err(status) => e.fail(status, false),
                            }
                            return;
                        }
                    };
                    let mut out = e.stream(200, &[("Content-Type", "text/plain")]);
                    for i in 0..size / 5 {
                        if cut.is_some_and(|c| i * 5 >= c) {
                            return;
                        }
                        let _ = out.write_all(b"yyyyy");
                    }
                    let _ = out.finish();
                }),
            )
        });
        addr
    }

    fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn streams_end_with_the_last_chunk_only_when_whole() {
        let addr = server();
        let whole = exchange(addr, "GET /whole HTTP/1.1\r\n\r\n");
        assert!(
            whole.contains("Transfer-Encoding: chunked"),
            "{}",
            &whole[..200]
        );
        assert!(whole.ends_with("yyy\r\n0\r\n\r\n"));
        let body = whole.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        assert_eq!(body.matches('y').count(), 100_000);
        let cut = exchange(addr, "GET /cut HTTP/1.1\r\n\r\n");
        assert!(cut.contains("Transfer-Encoding: chunked") && cut.contains("yyyyy"));
        assert!(!cut.ends_with("0\r\n\r\n"));
        // A small stream goes out with its length.
        let small = exchange(addr, "GET /small HTTP/1.1\r\n\r\n");
        assert!(small.contains("Content-Length: 25\r\n"), "{small}");
    }

    #[test]
    fn requests_are_read_within_limits() {
        let addr = server();
        let echo = exchange(
            addr,
            "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert!(
            echo.starts_with("HTTP/1.1 200") && echo.ends_with("\r\n\r\nhello"),
            "{echo}"
        );
        let long = exchange(
            addr,
            "POST /echo HTTP/1.1\r\nContent-Length: 9\r\n\r\nhellohello",
        );
        assert!(long.starts_with("HTTP/1.1 413"), "{long}");
        let chunked = exchange(
            addr,
            "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        assert!(chunked.starts_with("HTTP/1.1 411"), "{chunked}");
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        assert!(exchange(addr, &big).starts_with("HTTP/1.1 431"));
        assert!(exchange(addr, "hello\r\n\r\n").starts_with("HTTP/1.1 400"));
        let head = exchange(addr, "HEAD /small HTTP/1.1\r\n\r\n");
        assert!(
            head.ends_with("\r\n\r\n") && !head.contains("yyy"),
            "{head}"
        );
    }
}
