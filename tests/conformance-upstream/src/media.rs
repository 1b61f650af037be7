//! The binary content the fixture hands out: a 2×2 PNG (tool and prompt images, the
//! `test://static-binary` resource) and a 16-sample silent WAV (the audio tool), base64-encoded
//! as MCP carries them. Both were generated for this project, not copied.
//!
//! Owns: those two constants and their MIME types. Must not: grow; the suite only checks that
//! data and a MIME type are present.

/// A 2×2 RGB PNG, one colour, base64 (standard alphabet, padded).
pub(crate) const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR42mOQz38NRAwQCgAmGgXldPvgagAAAABJRU5ErkJggg==";
pub(crate) const PNG_MIME_TYPE: &str = "image/png";

/// A WAV file (PCM, 8 kHz, mono, 8-bit) of 16 silent samples, base64.
pub(crate) const WAV_BASE64: &str =
    "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YRAAAACAgICAgICAgICAgICAgICA";
/// The suite insists on exactly this MIME type for audio.
pub(crate) const WAV_MIME_TYPE: &str = "audio/wav";

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn the_image_is_a_png_and_the_sound_a_wav() {
        let png = STANDARD.decode(super::PNG_BASE64).expect("valid base64");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let wav = STANDARD.decode(super::WAV_BASE64).expect("valid base64");
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(&wav[8..12], b"WAVE");
        assert_eq!(
            wav.len(),
            8 + 0x34,
            "the RIFF length field matches the file"
        );
    }
}
