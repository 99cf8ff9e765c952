#!/usr/bin/env python3
"""Open WebUI's HTTP API driven the way its web front end drives it, for the upgrade scenario:
populate an Open WebUI older than 0.9.0 (0.8.x), and dump the API's view of any version from
0.8.x to 0.12.x so the views before and after an upgrade can be compared.  Standard library only.

    legacy_drive.py BASE_URL populate OUT.json     users (with passwords) and what was written
    legacy_drive.py BASE_URL dump USERS.json OUT.json
    legacy_drive.py BASE_URL login-check USERS.json

A chat turn is stored as the front end makes Open WebUI store it: the chat saved with the user
message and an empty assistant message, POST /api/chat/completions with chat_id, the assistant
message id and a session id (so the server streams the model's answer itself and writes it into
the chat), a poll until the message is done, POST /api/chat/completed, and the chat saved back.
The first turn asks for title and tag generation, so those requests reach the model server too.
"""
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

MODEL = "owsync-canned"
PASSWORD = "owsync-Passw0rd!"
POLL_SECONDS = 60


class Api:
    """Calls to one Open WebUI, as one user (a bearer token) or anonymously."""

    def __init__(self, base, token=None):
        self.base = base.rstrip("/")
        self.token = token

    def call(self, method, path, body=None, ok=(200,)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode(errors="replace")
        if status not in ok:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {text[:500]}")
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:  # NDJSON (0.12's /api/v1/chats/all): one value a line
            return [json.loads(line) for line in text.splitlines() if line.strip()]

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, {} if body is None else body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


def signin(base, email, password):
    """A session of the user EMAIL (proves the password)."""
    r = Api(base).post("/api/v1/auths/signin", {"email": email, "password": password})
    return Api(base, r["token"]), r


def now_ms():
    return int(time.time() * 1000)


def new_id():
    return str(uuid.uuid4())


def linear(history):
    """The messages from the root to history.currentId, as the front end's messages[] copy."""
    out, mid = [], history.get("currentId")
    while mid:
        m = history["messages"][mid]
        out.insert(0, m)
        mid = m.get("parentId")
    return out


def chat_turn(api, chat_id, chat, text, first):
    """One user message and its streamed answer, stored by Open WebUI; returns the chat id, the
    chat and the answer.  With chat_id None the chat is created (POST /api/v1/chats/new) with
    the user message and the empty answer in it, as the front end creates a chat; otherwise
    the chat is saved with them."""
    history = chat.setdefault("history", {"messages": {}, "currentId": None})
    parent = history.get("currentId")
    uid, aid = new_id(), new_id()
    history["messages"][uid] = {"id": uid, "parentId": parent, "childrenIds": [aid],
                                "role": "user", "content": text, "timestamp": int(time.time()),
                                "models": [MODEL]}
    if parent:
        history["messages"][parent]["childrenIds"].append(uid)
    history["messages"][aid] = {"id": aid, "parentId": uid, "childrenIds": [],
                                "role": "assistant", "content": "", "model": MODEL,
                                "modelName": MODEL, "modelIdx": 0,
                                "timestamp": int(time.time())}
    history["currentId"] = aid
    chat["messages"] = linear(history)
    if chat_id is None:
        chat_id = api.post("/api/v1/chats/new", {"chat": chat})["id"]
    else:
        api.post(f"/api/v1/chats/{chat_id}", {"chat": chat})
    prompt = [{"role": m["role"], "content": m["content"]} for m in chat["messages"][:-1]]
    r = api.post("/api/chat/completions", {
        "stream": True, "model": MODEL, "messages": prompt, "params": {}, "tool_ids": [],
        "files": [], "features": {}, "variables": {}, "session_id": "owsync-driver",
        "chat_id": chat_id, "id": aid, "parent_id": uid,
        "background_tasks": {"title_generation": first, "tags_generation": first,
                             "follow_up_generation": False}})
    if not (isinstance(r, dict) and (r.get("status") or r.get("task_id"))):
        raise RuntimeError(f"completion for chat {chat_id} was not taken as a task: {r}")
    deadline = time.time() + POLL_SECONDS
    while True:
        stored = api.get(f"/api/v1/chats/{chat_id}")
        msg = stored["chat"]["history"]["messages"].get(aid, {})
        if msg.get("done"):
            break
        if time.time() > deadline:
            raise RuntimeError(f"answer {aid} of chat {chat_id} not done in {POLL_SECONDS} s")
        time.sleep(0.1)
    chat = stored["chat"]
    chat["messages"] = linear(chat["history"])
    api.post("/api/chat/completed", {
        "model": MODEL, "chat_id": chat_id, "session_id": "owsync-driver", "id": aid,
        "messages": [{"id": m["id"], "role": m["role"], "content": m["content"],
                      "timestamp": m.get("timestamp")} for m in chat["messages"]]},
        ok=(200, 400, 404))
    api.post(f"/api/v1/chats/{chat_id}", {"chat": chat})
    return chat_id, chat, msg


def new_chat(api, texts):
    """A chat with one turn per text; returns (chat id, title, [(question, answer), ...])."""
    chat = {"id": "", "title": "New Chat", "models": [MODEL], "params": {},
            "history": {"messages": {}, "currentId": None}, "messages": [], "tags": [],
            "timestamp": now_ms()}
    chat_id, turns = None, []
    for i, text in enumerate(texts):
        chat_id, chat, msg = chat_turn(api, chat_id, chat, text, first=(i == 0))
        turns.append((text, msg["content"]))
    return chat_id, turns


def populate(base, out):
    record = {"base_url": base, "users": [], "chats": {}, "written": []}
    log = record["written"].append

    def user(name, email, role):
        record["users"].append({"name": name, "email": email, "password": PASSWORD,
                                "role": role})

    admin_r = Api(base).post("/api/v1/auths/signup",
                             {"name": "Ada Admin", "email": "admin@owsync.test",
                              "password": PASSWORD})
    admin = Api(base, admin_r["token"])
    user("Ada Admin", "admin@owsync.test", "admin")
    ids = {"admin@owsync.test": admin_r["id"]}
    for name, email in (("Alice Álvarez", "alice@owsync.test"), ("Bob 鲍勃", "bob@owsync.test"),
                        ("Carol Gone", "carol@owsync.test")):
        r = admin.post("/api/v1/auths/add", {"name": name, "email": email,
                                             "password": PASSWORD, "role": "user"})
        ids[email] = r["id"]
        user(name, email, "user")
    log(f"users: 1 signed up (admin), {len(ids) - 1} added by the admin")

    models = admin.get("/api/models")
    names = [m["id"] for m in models.get("data", models if isinstance(models, list) else [])]
    if MODEL not in names:
        raise RuntimeError(f"model {MODEL} not offered by Open WebUI: {names}")

    sessions = {u["email"]: signin(base, u["email"], u["password"])[0] for u in record["users"]}
    chats = record["chats"]
    plan = {
        "admin@owsync.test": [["Hello from the admin", "Tell me about owsync"],
                              ["A second admin chat"]],
        "alice@owsync.test": [["Bonjour, ça va ? 🙂", "Explain SQLite WAL mode",
                               "And the rollback journal?"],
                              ["Alice's chat for a folder", "More text"],
                              ["Alice's chat to archive"],
                              ["Alice's chat to delete"]],
        "bob@owsync.test": [["你好, Bob here", "Second question"], ["Bob's shared chat"]],
        "carol@owsync.test": [["Carol's only chat"]],
    }
    for email, texts_list in plan.items():
        for texts in texts_list:
            cid, turns = new_chat(sessions[email], texts)
            chats[cid] = {"owner": email, "turns": turns}
    log(f"chats: {len(chats)} with {sum(len(c['turns']) for c in chats.values())} streamed "
        "answers (title and tag generation on each first turn)")

    alice, bob = sessions["alice@owsync.test"], sessions["bob@owsync.test"]
    a_chats = [c for c, v in chats.items() if v["owner"] == "alice@owsync.test"]
    b_chats = [c for c, v in chats.items() if v["owner"] == "bob@owsync.test"]
    alice.post(f"/api/v1/chats/{a_chats[0]}", {"chat": {"title": "Alice: WAL and journals"}})
    log(f"title edited: {a_chats[0]}")
    alice.post(f"/api/v1/chats/{a_chats[0]}/pin")
    log(f"pinned: {a_chats[0]}")
    alice.post(f"/api/v1/chats/{a_chats[2]}/archive")
    log(f"archived: {a_chats[2]}")
    for cid, tag in ((a_chats[0], "sqlite"), (a_chats[0], "owsync"), (a_chats[1], "sqlite"),
                     (b_chats[0], "bob-tag")):
        (alice if cid in a_chats else bob).post(f"/api/v1/chats/{cid}/tags", {"name": tag})
    log("tags: sqlite, owsync (alice), bob-tag (bob)")
    folder = alice.post("/api/v1/folders/", {"name": "Alice's folder"})
    sub = alice.post("/api/v1/folders/", {"name": "Sub-folder", "parent_id": folder["id"]})
    alice.post(f"/api/v1/chats/{a_chats[1]}/folder", {"folder_id": folder["id"]})
    log(f"folders: {folder['id']} with sub-folder {sub['id']}; chat {a_chats[1]} moved in")
    share = bob.post(f"/api/v1/chats/{b_chats[1]}/share")
    log(f"shared: chat {b_chats[1]} as {share.get('share_id') if share else None}")
    alice.delete(f"/api/v1/chats/{a_chats[3]}")
    chats[a_chats[3]]["deleted"] = True
    log(f"chat deleted: {a_chats[3]}")

    for title, md in (("Alice's note", "# Notes\n\nSQLite *WAL* vs DELETE ✓"),
                      ("Second note", "plain text")):
        n = alice.post("/api/v1/notes/create", {
            "title": title, "data": {"content": {"md": md, "html": f"<p>{md}</p>",
                                                 "json": None}}, "meta": None})
        log(f"note: {n['id']}")
    alice.post(f"/api/v1/notes/{n['id']}/update", {
        "title": "Second note (edited)", "data": {"content": {"md": "edited",
                                                             "html": "<p>edited</p>",
                                                             "json": None}}})

    ch = admin.post("/api/v1/channels/create", {"name": "general", "description": "all of us",
                                                "is_private": False, "access_grants": [
        {"principal_type": "user", "principal_id": "*", "permission": "read"},
        {"principal_type": "user", "principal_id": "*", "permission": "write"}]})
    m1 = admin.post(f"/api/v1/channels/{ch['id']}/messages/post",
                    {"content": "Welcome to #general 👋"})
    m2 = alice.post(f"/api/v1/channels/{ch['id']}/messages/post", {"content": "Hi all"})
    bob.post(f"/api/v1/channels/{ch['id']}/messages/post",
             {"content": "A reply in the thread", "parent_id": m1["id"]})
    bob.post(f"/api/v1/channels/{ch['id']}/messages/{m2['id']}/reactions/add",
             {"name": "thumbsup"})
    log(f"channel {ch['id']}: 3 messages (one a thread reply), one reaction")

    admin.post("/api/v1/models/create", {
        "id": "owsync-custom", "base_model_id": MODEL, "name": "owsync custom",
        "meta": {"description": "a workspace model", "profile_image_url": "/static/favicon.png"},
        "params": {"temperature": 0.2}, "access_grants": []})
    log("workspace model: owsync-custom")
    admin.post("/api/v1/prompts/create", {"command": "summary", "name": "Summary",
                                          "content": "Summarise: {{CLIPBOARD}}"})
    log("prompt: /summary")
    cfg = admin.get("/api/v1/auths/admin/config")
    cfg["ENABLE_COMMUNITY_SHARING"] = False
    cfg["WEBUI_URL"] = "http://owsync.test"
    admin.post("/api/v1/auths/admin/config", cfg)
    log("admin config saved (the config table gets its row)")

    admin.delete(f"/api/v1/users/{ids['carol@owsync.test']}")
    for u in record["users"]:
        if u["email"] == "carol@owsync.test":
            u["deleted"] = True
    log("user deleted: carol@owsync.test (with her chat)")
    for u in record["users"]:
        u["id"] = ids[u["email"]]
    with open(out, "w") as f:
        json.dump(record, f, indent=1, ensure_ascii=False)
    print("\n".join(record["written"]))


def live_users(path):
    with open(path) as f:
        return [u for u in json.load(f)["users"] if not u.get("deleted")]


def login_check(base, users_path):
    """Every user that was not deleted logs in with its password; a deleted one cannot."""
    with open(users_path) as f:
        users = json.load(f)["users"]
    bad = []
    for u in users:
        try:
            signin(base, u["email"], u["password"])
            if u.get("deleted"):
                bad.append(f"{u['email']} was deleted but logs in")
        except RuntimeError as e:
            if not u.get("deleted"):
                bad.append(f"{u['email']}: {e}")
    for b in bad:
        print("login-check:", b)
    print(f"login-check: {len(users) - len(bad)} of {len(users)} users as expected")
    return 1 if bad else 0


def message_view(history):
    """Every message of a chat's tree, keyed by id: what both versions must show the same."""
    out = {}
    for mid, m in history.get("messages", {}).items():
        out[mid] = {"role": m.get("role"), "content": m.get("content"),
                    "parentId": m.get("parentId"), "childrenIds": m.get("childrenIds"),
                    "done": m.get("done"), "model": m.get("model")}
    return {"currentId": history.get("currentId"), "messages": out}


def dump(base, users_path, out):
    view = {}
    for u in live_users(users_path):
        api, me = signin(base, u["email"], u["password"])
        mine = {"id": me["id"], "email": me["email"], "name": me["name"], "role": me["role"],
                "chats": {}, "folders": [], "notes": [], "channels": {}, "tags": []}
        listed = api.get("/api/v1/chats/all")
        listed = listed.get("items", listed) if isinstance(listed, dict) else listed
        archived = api.get("/api/v1/chats/all/archived")
        pinned = {c["id"] for c in api.get("/api/v1/chats/pinned")}
        for c in list(listed) + list(archived):
            full = api.get(f"/api/v1/chats/{c['id']}")
            tags = api.get(f"/api/v1/chats/{c['id']}/tags")
            mine["chats"][c["id"]] = {
                "title": full["title"], "pinned": c["id"] in pinned or bool(full.get("pinned")),
                "archived": bool(full.get("archived")), "folder_id": full.get("folder_id"),
                "created_at": full.get("created_at"), "updated_at": full.get("updated_at"),
                "tags": sorted(t["name"] for t in tags),
                "history": message_view(full["chat"].get("history", {}))}
        mine["tags"] = sorted(t["name"] for t in api.get("/api/v1/chats/all/tags"))
        for f in api.get("/api/v1/folders/"):
            mine["folders"].append({"id": f["id"], "name": f["name"],
                                    "parent_id": f.get("parent_id")})
        mine["folders"].sort(key=lambda f: f["id"])
        for n in api.get("/api/v1/notes/"):
            full = api.get(f"/api/v1/notes/{n['id']}")
            mine["notes"].append({"id": full["id"], "title": full["title"],
                                  "md": ((full.get("data") or {}).get("content") or {}).get("md"),
                                  "created_at": full.get("created_at"),
                                  "updated_at": full.get("updated_at")})
        mine["notes"].sort(key=lambda n: n["id"])
        for ch in api.get("/api/v1/channels/"):
            msgs = api.get(f"/api/v1/channels/{ch['id']}/messages?skip=0&limit=100")
            rows = []
            for m in msgs:
                rows.append({"id": m["id"], "user_id": m["user_id"], "content": m["content"],
                             "parent_id": m.get("parent_id"),
                             "reply_count": m.get("reply_count"),
                             "reactions": sorted((r["name"], r.get("count"))
                                                 for r in m.get("reactions") or []),
                             "created_at": m.get("created_at")})
                if m.get("reply_count"):
                    for t in api.get(f"/api/v1/channels/{ch['id']}/messages/{m['id']}/thread"):
                        if t["id"] != m["id"]:
                            rows.append({"id": t["id"], "user_id": t["user_id"],
                                         "content": t["content"],
                                         "parent_id": t.get("parent_id"),
                                         "reply_count": t.get("reply_count"),
                                         "reactions": sorted((r["name"], r.get("count"))
                                                             for r in t.get("reactions") or []),
                                         "created_at": t.get("created_at")})
            rows.sort(key=lambda r: r["id"])
            mine["channels"][ch["id"]] = {"name": ch["name"], "messages": rows}
        if me["role"] == "admin":
            users = api.get("/api/v1/users/all")
            users = users.get("users", users) if isinstance(users, dict) else users
            mine["all_users"] = sorted((x["id"], x["email"], x["role"]) for x in users)
        view[u["email"]] = mine
    with open(out, "w") as f:
        json.dump(view, f, indent=1, sort_keys=True, ensure_ascii=False)
    print(f"dump: {len(view)} users, {sum(len(v['chats']) for v in view.values())} chats, "
          f"{sum(len(v['notes']) for v in view.values())} notes -> {out}")


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    base, cmd, args = argv[1], argv[2], argv[3:]
    if cmd == "populate" and len(args) == 1:
        populate(base, args[0])
    elif cmd == "dump" and len(args) == 2:
        dump(base, args[0], args[1])
    elif cmd == "login-check" and len(args) == 1:
        return login_check(base, args[0])
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
