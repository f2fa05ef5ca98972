//! Accounts: registration at start and shutdown, registrar failover and failback, RFC 3263
//! targets located again after their TTL.

use super::*;

impl Driver {
    /// Resolves each account's proxy and registrar and creates its registration.
    pub(super) async fn start_accounts(&mut self) {
        let configs = self.config.accounts.clone();
        for config in configs {
            let credentials = match config.resolve_password() {
                Ok(Some(password)) => Some(peerline_sip::auth::Credentials {
                    username: config.auth_user(),
                    password,
                }),
                Ok(None) => None,
                Err(e) => {
                    self.emit(Event::RegistrationFailed {
                        aor: config.aor.clone(),
                        code: 0,
                        reason: e,
                    });
                    None
                }
            };
            // RFC 3263: each server's targets in order, each with the transport the
            // location chose (NAPTR preference, SRV, `;transport=`).
            let registrar_uri = config.registrar_uri();
            let registrar = Located::locate(&self.locator, &registrar_uri).await;
            let proxy = match &config.outbound_proxy {
                Some(p) => Located::locate(&self.locator, p).await.ok(),
                None => None,
            };
            for l in registrar.iter().chain(proxy.iter()) {
                self.learn_tls_names(l);
            }
            let registration = match (config.register, &registrar) {
                (true, Ok(located)) => located.hop().map(|hop| {
                    let ip = local_ip_toward(hop.addr, self.sip_addr.ip());
                    let port = self.listen_port(hop.transport);
                    located::registration_for(
                        &config,
                        credentials.clone(),
                        &hop,
                        ip,
                        port,
                        &mut self.rng,
                    )
                }),
                (true, Err(e)) => {
                    self.emit(Event::RegistrationFailed {
                        aor: config.aor.clone(),
                        code: 0,
                        reason: format!("cannot resolve registrar {registrar_uri}: {e}"),
                    });
                    None
                }
                (false, _) => None,
            };
            let registrar = registrar.ok();
            let config_keepalive = u64::from(config.keepalive_secs);
            self.accounts.push(Account {
                config,
                credentials,
                proxy,
                registrar,
                registration,
                register_key: None,
                keepalive: peerline_sip::nat::KeepAlive::new(Duration::from_secs(config_keepalive)),
            });
        }
    }

    /// Removes every binding (REGISTER with expires=0) and waits, at most 2 s, for the
    /// registrars to answer.
    pub(super) async fn unregister_all(&mut self) {
        let now = Instant::now();
        let mut pending = 0;
        for a in &mut self.accounts {
            if let Some(r) = a.registration.as_mut() {
                if r.state() == peerline_sip::register::RegistrationState::Registered {
                    r.unregister(now);
                    pending += 1;
                }
            }
        }
        if pending == 0 {
            return;
        }
        self.flush().await;
        let limit = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.accounts.iter().any(|a| {
            a.registration.as_ref().is_some_and(|r| {
                r.state() == peerline_sip::register::RegistrationState::Unregistering
            })
        }) {
            match tokio::time::timeout_at(limit, self.transports.recv()).await {
                Ok(ev @ Some(_)) => {
                    self.transport_event(ev);
                    self.flush().await;
                }
                _ => break,
            }
        }
    }

    /// Sends due REGISTERs and turns registration events into phone events; `true` when
    /// it did anything.
    pub(super) fn pump_registrations(&mut self) -> bool {
        let now = Instant::now();
        let mut events = Vec::new();
        let mut sent = false;
        for i in 0..self.accounts.len() {
            self.registrar_failback(i, now);
        }
        for a in &mut self.accounts {
            let (Some(r), Some(dest)) = (
                a.registration.as_mut(),
                a.registrar.as_ref().and_then(Located::hop),
            ) else {
                continue;
            };
            while let Some(req) = r.poll_request(now) {
                sent = true;
                // The REGISTER refreshes the NAT binding as a keep-alive would.
                a.keepalive.on_sent(now);
                match self.endpoint.send_request_to(now, req, dest) {
                    Ok(key) => a.register_key = Some(key),
                    Err(e) => tracing::warn!("REGISTER not sent: {e}"),
                }
            }
            // Keep-alives while registered behind a NAT over UDP (RFC 5626 §4.4.1).
            let nat_flow = dest.transport == Transport::Udp
                && r.behind_nat()
                && matches!(
                    r.state(),
                    peerline_sip::register::RegistrationState::Registered
                        | peerline_sip::register::RegistrationState::Registering
                );
            if nat_flow {
                if !a.keepalive.running() && !a.keepalive.interval().is_zero() {
                    tracing::info!(
                        aor = %a.config.aor,
                        public = ?r.public_address(),
                        every = ?a.keepalive.interval(),
                        "registered behind a NAT: keep-alives to the registrar"
                    );
                }
                a.keepalive.start(now);
            } else {
                a.keepalive.stop();
            }
            while let Some(ev) = r.poll_event() {
                let aor = a.config.aor.clone();
                events.push(match ev {
                    peerline_sip::register::RegistrationEvent::Registered { expires } => {
                        Event::Registered { aor, expires }
                    }
                    peerline_sip::register::RegistrationEvent::Failed { code, reason } => {
                        Event::RegistrationFailed { aor, code, reason }
                    }
                    peerline_sip::register::RegistrationEvent::Unregistered => {
                        Event::Unregistered { aor }
                    }
                });
            }
        }
        let did = sent || !events.is_empty();
        for e in events {
            self.emit(e);
        }
        did
    }

    /// Sends the keep-alives that are due (a double CRLF to the registrar, on the SIP
    /// socket the REGISTERs use), counted in the ledger as SIP.
    pub(super) async fn send_keepalives(&mut self, now: Instant) {
        let mut due = Vec::new();
        for a in &mut self.accounts {
            let Some(hop) = a.registrar.as_ref().and_then(Located::hop) else {
                continue;
            };
            if let Some(ping) = a.keepalive.poll_transmit(now) {
                due.push((hop.addr, ping));
            }
        }
        for (dest, ping) in due {
            let t = Transmit {
                dest,
                bytes: ping.to_vec(),
                transport: Transport::Udp,
                conn: None,
            };
            match self.transports.send(&t).await {
                Ok(_) => {
                    tracing::debug!(to = %dest, "keep-alive sent");
                    self.ledger
                        .record(dest, TrafficClass::Sip, LedgerDirection::Sent, ping.len());
                }
                Err(e) => tracing::warn!(to = %dest, "keep-alive not sent: {e}"),
            }
        }
    }

    /// The public address to put in our Contact for a dialog whose requests go to and
    /// come from `toward` over `transport`: when an account registered behind a NAT over
    /// UDP with its Contact rewritten, and `toward` is that account's registrar or
    /// outbound proxy (the flow whose NAT binding the registrar saw), the registered
    /// Contact's address. `None` otherwise (our own address is right).
    pub(super) fn nat_contact_addr(
        &self,
        toward: SocketAddr,
        transport: Transport,
    ) -> Option<SocketAddr> {
        if transport != Transport::Udp {
            return None;
        }
        self.accounts.iter().find_map(|a| {
            let r = a.registration.as_ref()?;
            if !a.config.rewrite_contact || !r.behind_nat() {
                return None;
            }
            let via_account = [a.registrar.as_ref(), a.proxy.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(Located::hop)
                .any(|h| h.addr == toward && h.transport == Transport::Udp);
            if !via_account {
                return None;
            }
            peerline_sip::nat::uri_addr(r.contact()).filter(|c| Some(*c) == r.public_address())
        })
    }

    /// The registrar target of account `i` failed (Timer F, transport, 503): the account
    /// registers anew on the next target in RFC 3263 order (a new transaction, with Via and
    /// Contact for that target's transport). `false` when there is no other target, or
    /// when `tls_only` (a TLS target failed on its certificate) and the next is not TLS.
    pub(super) fn registrar_failover(
        &mut self,
        i: usize,
        reason: peerline_dns::FailReason,
        tls_only: bool,
    ) -> bool {
        let now = Instant::now();
        let a = &mut self.accounts[i];
        if a.registration
            .as_ref()
            .is_some_and(|r| r.state() == peerline_sip::register::RegistrationState::Unregistering)
        {
            return false;
        }
        let Some(next) = a.registrar.as_mut().and_then(|l| l.fail(reason, now)) else {
            return false;
        };
        if tls_only && next.transport != Transport::Tls {
            tracing::warn!(
                aor = %a.config.aor,
                next = %next.transport,
                "TLS registrar target failed on its certificate: not falling back to {}",
                next.transport
            );
            return false;
        }
        self.register_at(i, &next);
        true
    }

    /// Failback (RFC 3263 §4.3): when account `i`'s registration is due for its refresh
    /// and a target before the one in use is usable again (its blacklisting ran out), the
    /// account registers there instead, as a new registration.
    pub(super) fn registrar_failback(&mut self, i: usize, now: Instant) {
        let a = &mut self.accounts[i];
        let refresh_due = a.registration.as_ref().is_some_and(|r| {
            r.state() == peerline_sip::register::RegistrationState::Registered
                && r.poll_timeout().is_none()
        });
        if !refresh_due {
            return;
        }
        if let Some(hop) = a.registrar.as_mut().and_then(|l| l.failback(now)) {
            self.register_at(i, &hop);
        }
    }

    /// Tells the transports which name each TLS target of `located` must present
    /// (certificate check and SNI).
    pub(super) fn learn_tls_names(&self, located: &Located) {
        for (addr, name) in located.tls_names() {
            self.transports.set_server_name(addr, name);
        }
    }

    /// A new registration of account `i` at `hop` (Via and Contact for its transport).
    pub(super) fn register_at(&mut self, i: usize, hop: &Target) {
        let ip = local_ip_toward(hop.addr, self.sip_addr.ip());
        let port = self.listen_port(hop.transport);
        let a = &mut self.accounts[i];
        a.registration = Some(located::registration_for(
            &a.config,
            a.credentials.clone(),
            hop,
            ip,
            port,
            &mut self.rng,
        ));
        a.register_key = None;
    }

    /// RFC 3263 targets are kept no longer than their records' TTL: each account's
    /// registrar and outbound proxy whose list went stale are located again (checked when
    /// a timer fires and before each new out-of-dialog request). When the registrar's
    /// target in use changes transport, the registration is rebuilt for it.
    pub(super) async fn relocate_stale(&mut self, now: Instant) {
        for i in 0..self.accounts.len() {
            let before = self.accounts[i].registrar.as_ref().and_then(Located::hop);
            for which in [0, 1] {
                let a = &mut self.accounts[i];
                let Some(l) = (if which == 0 {
                    a.registrar.as_mut()
                } else {
                    a.proxy.as_mut()
                })
                .filter(|l| l.is_stale(now)) else {
                    continue;
                };
                match l.relocate(&self.locator, now).await {
                    Ok(()) => tracing::info!("located again after the TTL: {:?}", l.hop()),
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            for l in [&self.accounts[i].registrar, &self.accounts[i].proxy]
                .into_iter()
                .flatten()
            {
                self.learn_tls_names(l);
            }
            let after = self.accounts[i].registrar.as_ref().and_then(Located::hop);
            if let (Some(b), Some(a)) = (before, after) {
                if b.transport != a.transport && self.accounts[i].registration.is_some() {
                    self.register_at(i, &a);
                }
            }
        }
    }
}
