/*
 * An example gatehouse plugin in C: a password authenticator, type
 * "c_password", whose users are listed in its settings:
 *
 *   [[authenticators]]
 *   name = "C users"
 *   type = "c_password"
 *   [authenticators.settings]
 *   users = { ann = "ann's password", bob = "bob's password" }
 *   group = "c-users"            # optional: the one group every user gets
 *
 * Build (the manifest is embedded; only the entry symbol is exported):
 *
 *   cc -std=c11 -Wall -Wextra -shared -fPIC -fvisibility=hidden \
 *      -I sdk/include -o libc_password.so sdk/examples/c/password_plugin.c
 *
 * It shows what every C plugin needs: the manifest, the descriptor, a
 * create that refuses bad settings with "misconfigured", a call that
 * answers exactly once, and a JSON reader that handles the whole string
 * syntax (escapes, \uXXXX, surrogate pairs) rather than searching for
 * quotes. Requests are answered synchronously; a plugin that waits on the
 * network would call complete() later, from its own thread.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gatehouse_plugin.h"

#define TYPE_NAME "c_password"

GH_PLUGIN_MANIFEST("{\"name\":\"c-password-example\",\"version\":\"1.0.0\","
                   "\"sdk_version\":\"" GH_SDK_VERSION "\",\"abi\":1,"
                   "\"authenticators\":[\"" TYPE_NAME "\"],\"verifiers\":[],"
                   "\"capabilities\":[]}");

/* ---- A growable byte buffer ------------------------------------------ */

struct buf {
  char *data;
  size_t len, cap;
};

static int buf_put(struct buf *b, const void *bytes, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    char *p;
    while (cap < b->len + n + 1) cap *= 2;
    p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, bytes, n);
  b->len += n;
  b->data[b->len] = 0; /* always a C string too */
  return 0;
}

static int buf_str(struct buf *b, const char *s) { return buf_put(b, s, strlen(s)); }

static char *copy_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

/* Overwrites then frees (for passwords). */
static void wipe_free(char *p, size_t n) {
  volatile char *v = p;
  size_t i;
  if (!p) return;
  for (i = 0; i < n; i++) v[i] = 0;
  free(p);
}

/* Appends `s` as a JSON string literal. */
static int buf_json_string(struct buf *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  if (buf_put(b, "\"", 1)) return -1;
  for (; *p; p++) {
    char esc[6] = {'\\', 'u', '0', '0', 0, 0};
    if (*p == '"' || *p == '\\') {
      char two[2] = {'\\', (char)*p};
      if (buf_put(b, two, 2)) return -1;
    } else if (*p < 0x20) {
      esc[4] = hex[*p >> 4];
      esc[5] = hex[*p & 15];
      if (buf_put(b, esc, 6)) return -1;
    } else if (buf_put(b, p, 1)) {
      return -1;
    }
  }
  return buf_put(b, "\"", 1);
}

/* ---- A small, complete JSON reader ------------------------------------ */

struct cursor {
  const uint8_t *p, *end;
};

#define MAX_DEPTH 64

static void skip_ws(struct cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int expect(struct cursor *c, char ch) {
  skip_ws(c);
  if (c->p >= c->end || *c->p != (uint8_t)ch) return -1;
  c->p++;
  return 0;
}

static int hex4(struct cursor *c, unsigned *out) {
  unsigned v = 0;
  int i;
  if (c->end - c->p < 4) return -1;
  for (i = 0; i < 4; i++) {
    uint8_t h = *c->p++;
    v <<= 4;
    if (h >= '0' && h <= '9') v |= h - '0';
    else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
    else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
    else return -1;
  }
  *out = v;
  return 0;
}

static int put_utf8(struct buf *out, unsigned cp) {
  uint8_t u[4];
  size_t n;
  if (cp < 0x80) { u[0] = (uint8_t)cp; n = 1; }
  else if (cp < 0x800) { u[0] = (uint8_t)(0xC0 | cp >> 6); u[1] = (uint8_t)(0x80 | (cp & 0x3F)); n = 2; }
  else if (cp < 0x10000) {
    u[0] = (uint8_t)(0xE0 | cp >> 12); u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    u[2] = (uint8_t)(0x80 | (cp & 0x3F)); n = 3;
  } else {
    u[0] = (uint8_t)(0xF0 | cp >> 18); u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)); u[3] = (uint8_t)(0x80 | (cp & 0x3F)); n = 4;
  }
  return out ? buf_put(out, u, n) : 0;
}

/* Reads a JSON string at the cursor into `out` (NULL: skip it); `out` is
   NUL-terminated, and out->len tells a string holding U+0000 (strlen
   shorter than len) apart. */
static int read_string(struct cursor *c, struct buf *out) {
  if (expect(c, '"')) return -1;
  while (c->p < c->end) {
    uint8_t ch = *c->p++;
    if (ch == '"') {
      if (out && !out->data) return buf_put(out, "", 0);
      if (out) out->data[out->len] = 0;
      return 0;
    }
    if (ch < 0x20) return -1;
    if (ch != '\\') {
      if (out && buf_put(out, &ch, 1)) return -1;
      continue;
    }
    if (c->p >= c->end) return -1;
    ch = *c->p++;
    switch (ch) {
      case '"': case '\\': case '/':
        if (out && buf_put(out, &ch, 1)) return -1;
        break;
      case 'b': if (out && buf_put(out, "\b", 1)) return -1; break;
      case 'f': if (out && buf_put(out, "\f", 1)) return -1; break;
      case 'n': if (out && buf_put(out, "\n", 1)) return -1; break;
      case 'r': if (out && buf_put(out, "\r", 1)) return -1; break;
      case 't': if (out && buf_put(out, "\t", 1)) return -1; break;
      case 'u': {
        unsigned cp, lo;
        if (hex4(c, &cp)) return -1;
        if (cp >= 0xD800 && cp <= 0xDBFF) { /* a surrogate pair */
          if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u') return -1;
          c->p += 2;
          if (hex4(c, &lo) || lo < 0xDC00 || lo > 0xDFFF) return -1;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          return -1; /* a lone low surrogate */
        }
        if (put_utf8(out, cp)) return -1;
        break;
      }
      default:
        return -1;
    }
  }
  return -1; /* unterminated */
}

static int skip_value(struct cursor *c, int depth);

/* Calls member(key, cursor at the value, ctx) for each member of the
   object at the cursor; member must consume the value. */
typedef int (*member_fn)(const char *key, struct cursor *c, void *ctx);

static int read_object(struct cursor *c, member_fn member, void *ctx) {
  struct buf key = {0};
  int rc = -1;
  if (expect(c, '{')) return -1;
  skip_ws(c);
  if (c->p < c->end && *c->p == '}') { c->p++; return 0; }
  for (;;) {
    key.len = 0;
    if (read_string(c, &key) || strlen(key.data) != key.len || expect(c, ':') || member(key.data, c, ctx))
      break;
    skip_ws(c);
    if (c->p < c->end && *c->p == ',') { c->p++; continue; }
    if (c->p < c->end && *c->p == '}') { c->p++; rc = 0; }
    break;
  }
  free(key.data);
  return rc;
}

static int skip_member(const char *key, struct cursor *c, void *ctx) {
  (void)key;
  return skip_value(c, *(int *)ctx);
}

static int skip_value(struct cursor *c, int depth) {
  skip_ws(c);
  if (c->p >= c->end || depth > MAX_DEPTH) return -1;
  switch (*c->p) {
    case '"': return read_string(c, NULL);
    case '{': { int d = depth + 1; return read_object(c, skip_member, &d); }
    case '[':
      c->p++;
      skip_ws(c);
      if (c->p < c->end && *c->p == ']') { c->p++; return 0; }
      for (;;) {
        if (skip_value(c, depth + 1)) return -1;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') { c->p++; continue; }
        return expect(c, ']');
      }
    case 't': case 'f': case 'n': {
      static const char *const words[] = {"true", "false", "null"};
      size_t i;
      for (i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(c->end - c->p) >= n && memcmp(c->p, words[i], n) == 0) { c->p += n; return 0; }
      }
      return -1;
    }
    default: {
      const uint8_t *start = c->p;
      while (c->p < c->end && strchr("+-.0123456789eE", *c->p) && *c->p) c->p++;
      return c->p == start ? -1 : 0;
    }
  }
}

/* ---- The authenticator ------------------------------------------------ */

struct user {
  char *name;
  char *password;
  size_t password_len;
};

struct instance {
  struct user *users;
  size_t n_users;
  char *group; /* may be NULL */
};

static void instance_free(struct instance *inst) {
  size_t i;
  if (!inst) return;
  for (i = 0; i < inst->n_users; i++) {
    free(inst->users[i].name);
    wipe_free(inst->users[i].password, inst->users[i].password_len);
  }
  free(inst->users);
  free(inst->group);
  free(inst);
}

static int user_member(const char *name, struct cursor *c, void *ctx) {
  struct instance *inst = ctx;
  struct buf pw = {0};
  struct user *grown;
  if (read_string(c, &pw) || pw.len == 0 || strlen(pw.data) != pw.len || !*name) {
    wipe_free(pw.data, pw.cap);
    return -1;
  }
  grown = realloc(inst->users, (inst->n_users + 1) * sizeof *grown);
  if (!grown) { wipe_free(pw.data, pw.cap); return -1; }
  inst->users = grown;
  grown[inst->n_users].name = copy_string(name);
  grown[inst->n_users].password = pw.data;
  grown[inst->n_users].password_len = pw.cap;
  if (!grown[inst->n_users].name) { wipe_free(pw.data, pw.cap); return -1; }
  inst->n_users++;
  return 0;
}

struct settings_ctx {
  struct instance *inst;
  const char *error; /* why the settings are refused (never a value) */
};

static int settings_member(const char *key, struct cursor *c, void *ctx) {
  struct settings_ctx *s = ctx;
  if (strcmp(key, "users") == 0) {
    if (read_object(c, user_member, s->inst) == 0) return 0;
    s->error = "users: a table of username = \"non-empty password\"";
    return -1;
  }
  if (strcmp(key, "group") == 0) {
    struct buf g = {0};
    if (read_string(c, &g) == 0 && strlen(g.data) == g.len) {
      free(s->inst->group);
      s->inst->group = g.data;
      return 0;
    }
    free(g.data);
    s->error = "group: a string";
    return -1;
  }
  s->error = "unknown setting (known: users, group)";
  return -1;
}

static int config_member(const char *key, struct cursor *c, void *ctx) {
  struct settings_ctx *s = ctx;
  int depth = 1;
  if (strcmp(key, "settings") == 0) return read_object(c, settings_member, s);
  return skip_value(c, depth); /* name, state_dir, config_dir */
}

static void reply(gh_complete_fn complete, void *user_data, int32_t status, const char *json) {
  complete(user_data, status, (const uint8_t *)json, strlen(json));
}

static void reply_error(gh_complete_fn complete, void *user_data, const char *kind, const char *message) {
  struct buf b = {0};
  if (buf_str(&b, "{\"kind\":") || buf_json_string(&b, kind) || buf_str(&b, ",\"message\":") ||
      buf_json_string(&b, message) || buf_str(&b, "}")) {
    reply(complete, user_data, GH_ERROR, "{\"kind\":\"internal\",\"message\":\"out of memory\"}");
  } else {
    reply(complete, user_data, GH_ERROR, b.data);
  }
  free(b.data);
}

static void *create(uint32_t kind, const uint8_t *type_name, size_t type_len, const uint8_t *config,
                    size_t config_len, gh_complete_fn on_error, void *user_data) {
  struct cursor c = {config, config + config_len};
  struct settings_ctx s = {NULL, NULL};
  if (kind != GH_KIND_AUTHENTICATOR || type_len != strlen(TYPE_NAME) || memcmp(type_name, TYPE_NAME, type_len)) {
    reply_error(on_error, user_data, "misconfigured", "this library has no such type");
    return NULL;
  }
  s.inst = calloc(1, sizeof *s.inst);
  if (!s.inst) {
    reply_error(on_error, user_data, "internal", "out of memory");
    return NULL;
  }
  if (read_object(&c, config_member, &s) || s.inst->n_users == 0) {
    reply_error(on_error, user_data, "misconfigured",
                s.error ? s.error : "settings need users = { name = \"password\", ... }");
    instance_free(s.inst);
    return NULL;
  }
  return s.inst;
}

/* Compares in time that depends only on the length of `given`. */
static int same_password(const struct user *u, const char *given, size_t given_len) {
  size_t known_len = strlen(u->password), i;
  unsigned char diff = known_len != given_len;
  for (i = 0; i < given_len; i++) diff |= (unsigned char)(u->password[i % known_len] ^ given[i]);
  return diff == 0;
}

struct login {
  struct buf username, password;
};

static int login_member(const char *key, struct cursor *c, void *ctx) {
  struct login *l = ctx;
  if (strcmp(key, "username") == 0) return read_string(c, &l->username);
  if (strcmp(key, "password") == 0) return read_string(c, &l->password);
  return skip_value(c, 1); /* remote_addr, and fields later daemons add */
}

static void do_login(struct instance *inst, const uint8_t *request, size_t request_len, gh_complete_fn complete,
                     void *user_data) {
  struct cursor c = {request, request + request_len};
  struct login l = {{0}, {0}};
  const struct user *found = NULL;
  size_t i;
  if (read_object(&c, login_member, &l) || !l.username.data || !l.password.data) {
    reply_error(complete, user_data, "bad_request", "a login needs a username and a password");
  } else {
    /* A username holding U+0000 matches nobody. */
    for (i = 0; i < inst->n_users && strlen(l.username.data) == l.username.len; i++)
      if (strcmp(inst->users[i].name, l.username.data) == 0) found = &inst->users[i];
    if (!found || l.password.len == 0 || !same_password(found, l.password.data, l.password.len)) {
      reply(complete, user_data, GH_ERROR, "{\"kind\":\"invalid_credentials\"}");
    } else {
      struct buf r = {0};
      int bad = buf_str(&r, "{\"step\":\"authenticated\",\"uid\":") || buf_json_string(&r, found->name) ||
                buf_str(&r, ",\"username\":") || buf_json_string(&r, found->name) || buf_str(&r, ",\"groups\":[");
      if (!bad && inst->group) bad = buf_json_string(&r, inst->group);
      if (!bad) bad = buf_str(&r, "]}");
      if (bad) reply(complete, user_data, GH_ERROR, "{\"kind\":\"internal\",\"message\":\"out of memory\"}");
      else reply(complete, user_data, GH_OK, r.data);
      free(r.data);
    }
  }
  free(l.username.data);
  wipe_free(l.password.data, l.password.cap);
}

static void call(void *instance, const uint8_t *method, size_t method_len, const uint8_t *request,
                 size_t request_len, gh_complete_fn complete, void *user_data) {
  if (method_len == 5 && memcmp(method, "login", 5) == 0) {
    do_login(instance, request, request_len, complete, user_data);
  } else {
    reply_error(complete, user_data, "unsupported", "c_password has only password logins");
  }
}

static void destroy(void *instance) { instance_free(instance); }

static const gh_plugin_v1 PLUGIN = {
    GH_ABI_MAJOR,
    GH_ABI_MINOR,
    "{\"sdk_version\":\"" GH_SDK_VERSION "\",\"name\":\"c-password-example\","
    "\"authenticators\":[{\"type\":\"" TYPE_NAME "\",\"flow\":\"password\","
    "\"config_schema\":{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"users\"],"
    "\"properties\":{\"users\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\",\"minLength\":1}},"
    "\"group\":{\"type\":\"string\"}}},\"secret_settings\":[]}],\"verifiers\":[]}",
    create,
    call,
    destroy,
};

GH_PLUGIN_EXPORT const gh_plugin_v1 *gatehouse_plugin_entry(const gh_host_v1 *host) {
  static const char hello[] = "c_password example plugin loaded";
  if (host && host->log)
    host->log(GH_LOG_INFO, (const uint8_t *)"c-password", 10, (const uint8_t *)hello, sizeof hello - 1);
  return &PLUGIN;
}
