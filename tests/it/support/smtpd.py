"""SMTP test peer for checkit's integration tests (started by support/peers/smtp.rs).

aiosmtpd with STARTTLS, AUTH PLAIN/LOGIN for one user (only after STARTTLS,
like real submission servers), an optional implicit-TLS listener, and:

* every accepted message is written as one JSON file into --spool;
* a file named mail, rcpt or data in --control holds a reply line (for example
  "451 4.3.0 try again later") that the server then answers to that command,
  so tests switch temporary or permanent failures on and off at runtime.
"""

import argparse
import asyncio
import json
import os
import ssl

from aiosmtpd.smtp import SMTP, AuthResult


class Handler:
    def __init__(self, spool, control):
        self.spool = spool
        self.control = control
        self.counter = len(os.listdir(spool))

    def forced_reply(self, stage):
        try:
            with open(os.path.join(self.control, stage)) as file:
                return file.read().strip() or None
        except FileNotFoundError:
            return None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = self.forced_reply("mail")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.forced_reply("rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.forced_reply("data")
        if reply:
            return reply
        auth = session.auth_data
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "replace"),
            "helo": session.host_name,
            "auth_user": auth.login.decode("utf-8", "replace") if auth else None,
            "tls": session.ssl is not None,
        }
        self.counter += 1
        name = os.path.join(self.spool, "%06d.json" % self.counter)
        # Write then rename, so readers never see half a message.
        with open(name + ".tmp", "w") as file:
            json.dump(record, file)
        os.replace(name + ".tmp", name)
        return "250 2.0.0 OK queued as %06d" % self.counter


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-port", type=int)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--hostname", default="smtp.checkit.test")
    parser.add_argument("--require-starttls", action="store_true")
    parser.add_argument("--auth-required", action="store_true")
    args = parser.parse_args()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    handler = Handler(args.spool, args.control)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            auth_data.login == args.user.encode()
            and auth_data.password == args.password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def smtp(implicit_tls):
        return SMTP(
            handler,
            hostname=args.hostname,
            # Over implicit TLS the session is encrypted already.
            tls_context=None if implicit_tls else context,
            require_starttls=args.require_starttls and not implicit_tls,
            auth_required=args.auth_required,
            auth_require_tls=not implicit_tls,
            authenticator=authenticator,
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(
        loop.create_server(lambda: smtp(False), "127.0.0.1", args.port)
    )
    if args.tls_port:
        loop.run_until_complete(
            loop.create_server(lambda: smtp(True), "127.0.0.1", args.tls_port, ssl=context)
        )
    print("ready", flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
