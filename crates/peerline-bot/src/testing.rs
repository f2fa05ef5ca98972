//! What scenarios and tests can use: a synthetic speech-like signal, and a stand-in
//! registrar on loopback.

use std::f64::consts::PI;

/// A voiced, syllabic signal: harmonics of a gliding 100–140 Hz fundamental under a
/// 3 Hz on/off envelope. Not a tone (no single frequency holds most of the power) and its
/// level comes and goes like speech.
pub fn speech_like(rate: u32, seconds: f64) -> Vec<i16> {
    let n = (f64::from(rate) * seconds) as usize;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let f0 = 120.0 + 20.0 * (2.0 * PI * 0.7 * t).sin();
            phase += 2.0 * PI * f0 / f64::from(rate);
            let voiced: f64 = (1..=8).map(|k| (k as f64 * phase).sin() / k as f64).sum();
            let envelope = (2.0 * PI * 3.0 * t).sin().max(0.0);
            (voiced * envelope * 0.25 * 32767.0 / 2.0) as i16
        })
        .collect()
}

/// A stand-in registrar on 127.0.0.1 (any port): answers every REGISTER with `status`
/// (`"200 OK"` grants 120 s in `Expires`) and ignores anything else. Returns its address;
/// it runs until the task is aborted.
pub async fn loopback_registrar(
    status: &'static str,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let addr = socket.local_addr()?;
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !request.starts_with("REGISTER ") {
                continue;
            }
            let mut response = format!("SIP/2.0 {status}\r\n");
            for line in request.lines() {
                let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
                match name.as_str() {
                    "via" | "from" | "call-id" | "cseq" => {
                        response.push_str(line);
                        response.push_str("\r\n");
                    }
                    "to" => response.push_str(&format!("{line};tag=reg1\r\n")),
                    _ => {}
                }
            }
            if status.starts_with("200") {
                response.push_str("Expires: 120\r\n");
            }
            response.push_str("Content-Length: 0\r\n\r\n");
            let _ = socket.send_to(response.as_bytes(), from).await;
        }
    });
    Ok((addr, task))
}
