"""A real SMTP server for the alarm tests (Debian python3-aiosmtpd): STARTTLS with the given
certificate, AUTH PLAIN/LOGIN with one user, each accepted mail written to OUTDIR as
<n>.eml (atomically: written as .tmp, then renamed). Prints the port it listens on, then
serves until killed.

usage: smtp_server.py OUTDIR PORT CERT KEY USER PASSWORD   (CERT "-" = no TLS, no AUTH)
"""
import asyncio
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

outdir, port, cert, key, user, password = sys.argv[1:7]
port = int(port)


class Handler:
    def __init__(self):
        self.n = len([f for f in os.listdir(outdir) if f.endswith(".eml")])

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        tmp = os.path.join(outdir, ".%d.tmp" % self.n)
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(outdir, "%06d-%d.eml" % (self.n, os.getpid())))
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == user.encode()
        and auth_data.password == password.encode()
    )
    return AuthResult(success=ok)


async def main():
    handler = Handler()
    if cert == "-":
        factory = lambda: SMTP(handler, hostname="localhost")
    else:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        factory = lambda: SMTP(
            handler,
            hostname="localhost",
            tls_context=ctx,
            require_starttls=True,
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=True,
        )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", port, reuse_address=True)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
