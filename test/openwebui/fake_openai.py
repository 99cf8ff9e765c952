#!/usr/bin/env python3
"""A small OpenAI-compatible model server on 127.0.0.1 for the Open WebUI tests (stdlib only).

    fake_openai.py PORT

GET  /v1/models            one chat model, owsync-canned (and the embedding model, owsync-embed)
POST /v1/chat/completions  with "stream": true: server-sent events, one chunk per canned token,
                           a few ms apart, then [DONE]; without: one JSON answer
POST /v1/embeddings        a deterministic 32-dimensional vector per input

The answer depends only on the request: canned_reply(last user message) for a chat, a JSON
title or tag list for Open WebUI's title and tag generation tasks (recognised by their prompt),
so a test can check which reply a message got.
"""
import hashlib
import json
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = 'owsync-canned'
EMBED_MODEL = 'owsync-embed'
TOKEN_DELAY = 0.003  # seconds between streamed chunks


def digest(text):
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]


def canned_reply(user_text):
    """The reply to a chat whose last user message is user_text (drive.py checks it)."""
    return f'Canned reply {digest(user_text)}: owsync heard {len(user_text)} characters.'


def message_text(message):
    content = message.get('content')
    if isinstance(content, list):  # multimodal form: [{"type": "text", "text": ...}, ...]
        return ''.join(p.get('text', '') for p in content if isinstance(p, dict))
    return content or ''


def answer(body):
    messages = body.get('messages') or []
    last_user = next((message_text(m) for m in reversed(messages) if m.get('role') == 'user'), '')
    prompt = '\n'.join(message_text(m) for m in messages)
    if '### Task:' in prompt and 'title' in prompt.lower() and '"title"' in prompt:
        return json.dumps({'title': f'Canned title {digest(prompt)[:6]}'})
    if '### Task:' in prompt and '"tags"' in prompt:
        return json.dumps({'tags': ['Owsync', 'Testing']})
    if '### Task:' in prompt and '"follow_ups"' in prompt:
        return json.dumps({'follow_ups': ['Tell me more.', 'Why is that?']})
    return canned_reply(last_user)


def tokens(text):
    """The text cut into chunks as a model streams them (words with their trailing space)."""
    out, word = [], ''
    for ch in text:
        word += ch
        if ch == ' ':
            out.append(word)
            word = ''
    if word:
        out.append(word)
    return out


def embedding(text):
    raw = hashlib.sha256(text.encode('utf-8')).digest()
    raw = raw + hashlib.sha256(raw).digest()  # 64 bytes -> 32 unsigned shorts
    return [v / 65535.0 for v in struct.unpack('<32H', raw)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        sys.stderr.write('%s %s\n' % (time.strftime('%H:%M:%S'), fmt % args))

    def send_json(self, obj, status=200):
        data = json.dumps(obj).encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_json(self):
        n = int(self.headers.get('Content-Length') or 0)
        return json.loads(self.rfile.read(n) or b'{}')

    def do_GET(self):
        if self.path.rstrip('/') in ('/v1/models', '/models'):
            now = int(time.time())
            self.send_json({'object': 'list', 'data': [
                {'id': MODEL, 'object': 'model', 'created': now, 'owned_by': 'owsync'},
                {'id': EMBED_MODEL, 'object': 'model', 'created': now, 'owned_by': 'owsync'},
            ]})
        else:
            self.send_json({'error': {'message': 'not found: ' + self.path}}, 404)

    def do_POST(self):
        path = self.path.rstrip('/')
        if path in ('/v1/chat/completions', '/chat/completions'):
            self.chat(self.read_json())
        elif path in ('/v1/embeddings', '/embeddings'):
            body = self.read_json()
            inputs = body.get('input')
            if isinstance(inputs, str):
                inputs = [inputs]
            self.send_json({'object': 'list', 'model': body.get('model', EMBED_MODEL),
                            'data': [{'object': 'embedding', 'index': i, 'embedding': embedding(t)}
                                     for i, t in enumerate(inputs or [])],
                            'usage': {'prompt_tokens': 0, 'total_tokens': 0}})
        else:
            self.send_json({'error': {'message': 'not found: ' + self.path}}, 404)

    def chat(self, body):
        text = answer(body)
        cid = 'chatcmpl-' + digest(text + str(time.time()))
        created = int(time.time())
        model = body.get('model', MODEL)
        if not body.get('stream'):
            self.send_json({
                'id': cid, 'object': 'chat.completion', 'created': created, 'model': model,
                'choices': [{'index': 0, 'finish_reason': 'stop',
                             'message': {'role': 'assistant', 'content': text}}],
                'usage': {'prompt_tokens': 1, 'completion_tokens': len(tokens(text)),
                          'total_tokens': 1 + len(tokens(text))}})
            return
        self.send_response(200)
        self.send_header('Content-Type', 'text/event-stream')
        self.send_header('Cache-Control', 'no-cache')
        self.send_header('Connection', 'close')
        self.end_headers()
        self.close_connection = True

        def event(delta, finish=None):
            chunk = {'id': cid, 'object': 'chat.completion.chunk', 'created': created,
                     'model': model,
                     'choices': [{'index': 0, 'delta': delta, 'finish_reason': finish}]}
            self.wfile.write(b'data: ' + json.dumps(chunk).encode('utf-8') + b'\n\n')
            self.wfile.flush()

        event({'role': 'assistant', 'content': ''})
        for tok in tokens(text):
            time.sleep(TOKEN_DELAY)
            event({'content': tok})
        event({}, 'stop')
        self.wfile.write(b'data: [DONE]\n\n')
        self.wfile.flush()


def main():
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(('127.0.0.1', port), Handler)
    server.daemon_threads = True
    sys.stderr.write(f'fake_openai: serving {MODEL} on 127.0.0.1:{port}\n')
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
