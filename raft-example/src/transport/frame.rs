//! Frames on a peer connection, and the handshake that opens it.
//!
//! ```text
//!   frame     = length (u32, big-endian) | payload (length bytes)
//!   handshake = the dialer's frame of a `Hello`, answered by the acceptor's `Hello`
//!   then      = frames of prost-encoded raft_core::Message, dialer → acceptor only
//! ```
//! A length above the maximum frame size is refused before anything is read or allocated.
//! A connection ending at a frame boundary is a clean close; ending inside one is truncation.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The default maximum frame size: room for a snapshot of a large store in one MsgSnap.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 256 << 20;

/// The transport protocol version in the handshake.
pub const PROTOCOL_VERSION: u32 = 1;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The announced length is above the maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The connection ended inside a frame.
    #[error("connection closed inside a frame ({got} of {want} bytes)")]
    Truncated {
        /// Bytes received of the frame (length word included).
        got: usize,
        /// Bytes the frame needed.
        want: usize,
    },
    /// The payload is not the protobuf it should be.
    #[error("undecodable {what}: {err}")]
    Decode {
        /// What was expected.
        what: &'static str,
        /// The decoder's complaint.
        err: prost::DecodeError,
    },
}

/// The first frame each side sends.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`].
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The cluster the sender belongs to.
    #[prost(string, tag = "2")]
    pub cluster_id: String,
    /// The sender's node id.
    #[prost(uint64, tag = "3")]
    pub from: u64,
    /// The node id the sender means to talk to (0 in the acceptor's answer).
    #[prost(uint64, tag = "4")]
    pub to: u64,
    /// The sender's HTTP address.
    #[prost(string, tag = "5")]
    pub http_addr: String,
}

/// Reads one frame into `buf` (reused); `Ok(false)` on a clean close before a frame.
///
/// # Errors
/// [`FrameError`] on a socket error, an oversized length, or truncation.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<bool, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut len[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err(FrameError::Truncated { got, want: 4 });
        }
        got += n;
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    buf.clear();
    buf.resize(len, 0);
    let mut got = 0;
    while got < len {
        let n = r.read(&mut buf[got..]).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                got: got + 4,
                want: len + 4,
            });
        }
        got += n;
    }
    Ok(true)
}

/// Writes one frame (not flushed).
///
/// # Errors
/// [`FrameError::Io`] on a socket error, [`FrameError::TooLarge`] above `max` (nothing is
/// written then).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    payload: &[u8],
    max: usize,
) -> Result<(), FrameError> {
    if payload.len() > max {
        return Err(FrameError::TooLarge {
            len: payload.len(),
            max,
        });
    }
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        len: payload.len(),
        max,
    })?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(payload).await?;
    Ok(())
}

/// Decodes a frame's payload as a `T`.
///
/// # Errors
/// [`FrameError::Decode`] when it is not one.
pub fn decode<T: prost::Message + Default>(
    payload: &[u8],
    what: &'static str,
) -> Result<T, FrameError> {
    T::decode(Bytes::copy_from_slice(payload)).map_err(|err| FrameError::Decode { what, err })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[tokio::test]
    async fn frames_round_trip() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let hello = Hello {
            version: PROTOCOL_VERSION,
            cluster_id: "c".into(),
            from: 1,
            to: 2,
            http_addr: "127.0.0.1:1".into(),
        };
        write_frame(&mut a, &hello.encode_to_vec(), 1024)
            .await
            .unwrap();
        write_frame(&mut a, b"", 1024).await.unwrap();
        drop(a);
        let mut buf = Vec::new();
        assert!(read_frame(&mut b, 1024, &mut buf).await.unwrap());
        assert_eq!(decode::<Hello>(&buf, "hello").unwrap(), hello);
        assert!(read_frame(&mut b, 1024, &mut buf).await.unwrap());
        assert!(buf.is_empty());
        // A clean close at a frame boundary.
        assert!(!read_frame(&mut b, 1024, &mut buf).await.unwrap());
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_it_is_read() {
        let (mut a, mut b) = tokio::io::duplex(64);
        // Only the length word is sent: the reader must refuse without waiting for the body.
        a.write_all(&(10_000u32).to_be_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let err = read_frame(&mut b, 1000, &mut buf).await.unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    len: 10_000,
                    max: 1000
                }
            ),
            "{err}"
        );
        assert!(buf.capacity() < 10_000, "nothing allocated for it");
        // And the writer refuses to send one.
        let err = write_frame(&mut a, &[0u8; 2000], 1000).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }));
    }

    #[tokio::test]
    async fn truncated_frames_and_garbage_are_errors() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 9, 1, 2, 3]).await.unwrap();
        drop(a);
        let mut buf = Vec::new();
        let err = read_frame(&mut b, 1000, &mut buf).await.unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { got: 7, want: 13 }),
            "{err}"
        );
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 0]).await.unwrap();
        drop(a);
        assert!(matches!(
            read_frame(&mut b, 1000, &mut buf).await,
            Err(FrameError::Truncated { got: 2, want: 4 })
        ));
        // A frame whose payload is not a message.
        let err = decode::<raft_core::Message>(&[0xff, 0xff, 0xff], "message").unwrap_err();
        assert!(matches!(err, FrameError::Decode { .. }), "{err}");
    }
}
