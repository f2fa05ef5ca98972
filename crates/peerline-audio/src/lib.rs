//! Audio devices (cpal), WAV files, tones.
