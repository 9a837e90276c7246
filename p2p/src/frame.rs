//! The libp2p request/response codec servers and clients share: a 4-byte big-endian
//! length, then one value in the protocol codec. The length is checked against
//! `MAX_FRAME_BYTES` before the frame is read, so a hostile peer cannot make us buffer
//! more than that; a frame that does not decode fails only its own stream.

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;
use protocol::limits::MAX_FRAME_BYTES;

/// Called with a reason label whenever an inbound frame is refused. The request-response
/// behaviour drops a stream whose request fails to read without any event, so this hook
/// is how a server counts malformed traffic.
pub type RejectHook = Arc<dyn Fn(&'static str) + Send + Sync>;

/// Length-prefixed frames decoded with the protocol codec.
pub struct FrameCodec<Req, Resp> {
    on_reject: Option<RejectHook>,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> FrameCodec<Req, Resp> {
    /// A codec that reports refused frames to `hook`.
    pub fn with_reject_hook(hook: RejectHook) -> Self {
        Self {
            on_reject: Some(hook),
            _types: PhantomData,
        }
    }

    fn refused<T>(&self, e: io::Error) -> io::Result<T> {
        if let Some(hook) = &self.on_reject {
            hook(classify(&e));
        }
        Err(e)
    }
}

/// A frame announced more bytes than [`MAX_FRAME_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
pub struct FrameTooLarge(pub usize);

/// A stable label for why a frame was refused. Decided by the error's type, not its
/// text: a field over its bound inside a well-sized frame is malformed, not too large.
pub fn classify(e: &io::Error) -> &'static str {
    let too_large = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<FrameTooLarge>().is_some());
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "truncated_frame",
        io::ErrorKind::InvalidData if too_large => "frame_too_large",
        io::ErrorKind::InvalidData => "malformed_frame",
        _ => "stream_error",
    }
}

impl<Req, Resp> Clone for FrameCodec<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            on_reject: self.on_reject.clone(),
            _types: PhantomData,
        }
    }
}
impl<Req, Resp> Default for FrameCodec<Req, Resp> {
    fn default() -> Self {
        Self {
            on_reject: None,
            _types: PhantomData,
        }
    }
}

/// Read one length-prefixed frame.
pub async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, FrameTooLarge(n)));
    }
    // Grow the buffer as bytes arrive rather than trusting the announced length: a peer
    // that announces 16 MiB on many streams and then trickles costs only what it sends.
    let mut buf = Vec::with_capacity(n.min(64 * 1024));
    io.take(n as u64).read_to_end(&mut buf).await?;
    if buf.len() != n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "frame announced {n} bytes, stream ended after {}",
                buf.len()
            ),
        ));
    }
    Ok(buf)
}

/// Write one length-prefixed frame.
pub async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, b: &[u8]) -> io::Result<()> {
    let len = u32::try_from(b.len()).map_err(|_| io::Error::other("frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(b).await?;
    io.flush().await
}

fn decode_frame<V: serde::de::DeserializeOwned>(b: &[u8]) -> io::Result<V> {
    protocol::decode(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn encode_frame<V: serde::Serialize>(v: &V) -> io::Result<Vec<u8>> {
    protocol::encode(v).map_err(io::Error::other)
}

impl<Req, Resp> request_response::Codec for FrameCodec<Req, Resp>
where
    Req: serde::Serialize + serde::de::DeserializeOwned + Send,
    Resp: serde::Serialize + serde::de::DeserializeOwned + Send,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Req> {
        match read_frame(io).await.and_then(|b| decode_frame(&b)) {
            Ok(v) => Ok(v),
            Err(e) => self.refused(e),
        }
    }
    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Resp> {
        decode_frame(&read_frame(io).await?)
    }
    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Req,
    ) -> io::Result<()> {
        write_frame(io, &encode_frame(&r)?).await
    }
    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Resp,
    ) -> io::Result<()> {
        write_frame(io, &encode_frame(&r)?).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::executor::block_on;
    use futures::io::Cursor;
    use proptest::prelude::*;
    use protocol::wire::{ClientRequest, ClientResponse};
    use request_response::Codec;

    use super::*;
    use crate::names::CLIENT_PROTOCOL;

    fn framed(len: u32, body: &[u8]) -> Vec<u8> {
        let mut v = len.to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// Any byte stream gives a frame, or an error with a stable label; never a panic,
        /// and never more bytes than the stream held.
        #[test]
        fn read_frame_survives_random_streams(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            match block_on(read_frame(&mut Cursor::new(bytes.clone()))) {
                Ok(frame) => {
                    let n = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
                    prop_assert_eq!(frame.as_slice(), &bytes[4..4 + n]);
                }
                Err(e) => prop_assert!(
                    ["truncated_frame", "frame_too_large", "malformed_frame"].contains(&classify(&e)),
                    "{e}"
                ),
            }
        }

        /// The server side of the client protocol refuses random frames by a named reason.
        #[test]
        fn client_requests_from_random_bytes_are_refused_by_name(body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let seen: Arc<Mutex<Vec<&'static str>>> = Arc::default();
            let s2 = seen.clone();
            let mut codec = FrameCodec::<ClientRequest, ClientResponse>::with_reject_hook(Arc::new(
                move |reason| s2.lock().expect("lock").push(reason),
            ));
            let stream = framed(body.len() as u32, &body);
            let r = block_on(codec.read_request(&CLIENT_PROTOCOL, &mut Cursor::new(stream)));
            let seen = seen.lock().expect("lock").clone();
            match r {
                Ok(_) => prop_assert!(seen.is_empty()),
                Err(_) => prop_assert_eq!(seen, vec!["malformed_frame"]),
            }
        }
    }

    #[test]
    fn frame_errors_are_classified() {
        let too_big = framed(u32::MAX, &[]);
        let e = block_on(read_frame(&mut Cursor::new(too_big))).expect_err("too large");
        assert_eq!(classify(&e), "frame_too_large");
        let short = framed(10, &[1, 2, 3]);
        let e = block_on(read_frame(&mut Cursor::new(short))).expect_err("truncated");
        assert_eq!(classify(&e), "truncated_frame");
        let e = block_on(read_frame(&mut Cursor::new(vec![0u8, 0]))).expect_err("no prefix");
        assert_eq!(classify(&e), "truncated_frame");
        let ok = block_on(read_frame(&mut Cursor::new(framed(2, &[7, 8, 9])))).expect("frame");
        assert_eq!(ok, vec![7, 8]);
    }
}
