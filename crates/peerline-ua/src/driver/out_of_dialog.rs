//! Requests outside any dialog: where they go and as whom (account, outbound proxy, RFC
//! 3263 location), and instant messages (RFC 3428 MESSAGE) with their digest retry.

use super::*;

impl Driver {
    /// Where a new out-of-dialog request to `target` goes and as whom: with an account,
    /// through its outbound proxy (or registrar) with its AOR and credentials; without
    /// one, straight to the target. The transport is the one RFC 3263 location chose.
    pub(super) async fn out_of_dialog(
        &mut self,
        target: &str,
        account_index: Option<usize>,
    ) -> Result<OutOfDialog, PhoneError> {
        let uri = rsip::Uri::try_from(target)
            .map_err(|e| PhoneError::BadTarget(target.into(), e.to_string()))?;
        self.relocate_stale(Instant::now()).await;
        let account_index = account_index.or((!self.accounts.is_empty()).then_some(0));
        let account = account_index.and_then(|i| self.accounts.get(i));
        let via_proxy = account
            .and_then(|a| a.proxy.as_ref())
            .and_then(Located::hop);
        let route = account.and_then(|a| a.config.outbound_proxy.clone());
        let aor = account.map(|a| a.config.aor.clone());
        let digest = account
            .and_then(|a| a.credentials.clone())
            .map(peerline_sip::auth::DigestClient::new);
        let first_hop = match via_proxy {
            Some(p) => p,
            None => {
                let located = Located::locate(&self.locator, &uri.to_string())
                    .await
                    .map_err(|e| PhoneError::BadTarget(target.into(), e))?;
                self.learn_tls_names(&located);
                located.hop().ok_or_else(|| {
                    PhoneError::BadTarget(target.into(), format!("{uri}: no usable target"))
                })?
            }
        };
        let (dest, transport) = (first_hop.addr, first_hop.transport);
        Ok(OutOfDialog {
            dest,
            transport,
            ip: local_ip_toward(dest, self.sip_addr.ip()),
            route,
            aor,
            digest,
            account: account_index,
        })
    }

    /// Sends a MESSAGE (RFC 3428) outside any dialog; `reply` gets the final status
    /// later. On an error before sending, the error and `reply` come back.
    pub(super) async fn send_message(
        &mut self,
        target: &str,
        content_type: &str,
        body: Vec<u8>,
        reply: oneshot::Sender<Result<u16, PhoneError>>,
    ) -> Result<(), (PhoneError, oneshot::Sender<Result<u16, PhoneError>>)> {
        let hop = match self.out_of_dialog(target, None).await {
            Ok(h) => h,
            Err(e) => return Err((e, reply)),
        };
        let from_uri = hop.aor.clone().unwrap_or_else(|| {
            format!(
                "sip:{}@{}",
                self.config.identity.user,
                SocketAddr::new(hop.ip, self.sip_addr.port())
            )
        });
        let call_id = peerline_sip::message::new_call_id(&mut self.rng, &hop.ip.to_string());
        let tag = peerline_sip::message::new_tag(&mut self.rng);
        let branch = self.branch();
        let sent_by = SocketAddr::new(hop.ip, self.sip_addr.port()).to_string();
        let mut builder = RequestBuilder::new(Method::Message, target)
            .via(hop.transport.via_token(), &sent_by, &branch)
            .from(
                &from_uri,
                self.config.identity.display_name.as_deref(),
                &tag,
            )
            .to(target, None)
            .call_id(&call_id)
            .cseq(1);
        if let Some(r) = &hop.route {
            builder = builder.route(&format!("<{};lr>", contact_uri(r)));
        }
        let request = match builder
            .header(make_header("User-Agent", USER_AGENT))
            .body(content_type, body)
            .build()
        {
            Ok(r) => r,
            Err(e) => return Err((sip_err(e), reply)),
        };
        let to = match hop.transport {
            Transport::Udp => Target::udp(hop.dest),
            t => Target::stream(hop.dest, t, None),
        };
        match self
            .endpoint
            .send_request_to(Instant::now(), request.clone(), to)
        {
            Ok(key) => {
                self.messages.insert(
                    key,
                    crate::messaging::Pending {
                        request,
                        target: to,
                        digest: hop.digest,
                        reply,
                    },
                );
                Ok(())
            }
            Err(e) => Err((sip_err(e), reply)),
        }
    }

    /// A final response to one of our MESSAGEs: retried once with credentials on a
    /// 401/407 when the account has them, else reported to the sender.
    pub(super) fn message_response(
        &mut self,
        mut pending: crate::messaging::Pending,
        response: &Response,
    ) {
        let code = response.status_code.code();
        if matches!(code, 401 | 407) {
            if let Some(mut digest) = pending.digest.take() {
                let branch = self.branch();
                let mut retry = crate::request_edit::next_attempt(&pending.request, &branch);
                if digest.handle_challenge(response).is_ok()
                    && digest.authorize(&mut retry, &mut self.rng).is_ok()
                {
                    if let Ok(key) =
                        self.endpoint
                            .send_request_to(Instant::now(), retry.clone(), pending.target)
                    {
                        pending.request = retry;
                        self.messages.insert(key, pending);
                        return;
                    }
                }
            }
        }
        let _ = pending.reply.send(crate::messaging::outcome(response));
    }
}
