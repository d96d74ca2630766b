"""Reads one mail (RFC 5322 bytes) on stdin and prints its parts as JSON for the alarm tests:
{"subject", "text" (the text/plain part, decoded), "attachments": [{"filename", "data" (base64
of the exact bytes)}]}. Python's own email package decodes it, not the code under test.
"""
import base64
import email
import email.policy
import json
import sys

msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
body = msg.get_body(preferencelist=("plain",))
out = {
    "subject": str(msg["subject"]),
    "text": body.get_content() if body is not None else "",
    "attachments": [
        {
            "filename": part.get_filename(),
            "data": base64.b64encode(part.get_payload(decode=True)).decode(),
        }
        for part in msg.iter_attachments()
    ],
}
print(json.dumps(out))
