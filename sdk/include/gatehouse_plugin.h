/*
 * gatehouse plugin ABI, version 1.
 *
 * A plugin is a shared library that exports ONE symbol:
 *
 *     const gh_plugin_v1 *gatehouse_plugin_entry(const gh_host_v1 *host);
 *
 * The daemon calls it once per library (a library is never unloaded) and
 * reads `abi_major` first: a library whose `abi_major` differs from the
 * daemon's is refused. Minor versions only append fields at the end of the
 * structs below, so a plugin built against 1.x loads into every later 1.y
 * daemon.
 *
 * Every value that crosses the boundary is a UTF-8 JSON document (pointer +
 * length, not NUL-terminated): self-describing, versionable by adding
 * fields, and writable from any language. The JSON shapes are those of the
 * Rust SDK (gatehouse-sdk): PasswordLogin, LoginStep, StartRequest,
 * Redirect, FinishRequest, Identity, Metadata, VerifyRequest,
 * VerifiedToken, PluginError. See sdk/README.md for examples.
 *
 * Memory: each side frees only what it allocated. Buffers the daemon passes
 * in are valid only during the call; copy what you keep. Buffers a plugin
 * passes to a callback are valid only during that callback; the daemon
 * copies them before returning.
 *
 * Threads: `call` may be invoked from any thread, concurrently. `complete`
 * may be invoked from any thread, before or after `call` returns, and must
 * be invoked exactly once per call.
 */
#ifndef GATEHOUSE_PLUGIN_H
#define GATEHOUSE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GH_ABI_MAJOR 1
#define GH_ABI_MINOR 0

/* Log levels for gh_host_v1.log. */
#define GH_LOG_TRACE 0
#define GH_LOG_DEBUG 1
#define GH_LOG_INFO 2
#define GH_LOG_WARN 3
#define GH_LOG_ERROR 4

/* Instance kinds for gh_plugin_v1.create. */
#define GH_KIND_AUTHENTICATOR 0
#define GH_KIND_VERIFIER 1

/* Completion status. */
#define GH_OK 0    /* data is the result JSON */
#define GH_ERROR 1 /* data is a PluginError JSON, e.g.
                      {"kind":"invalid_credentials"} or
                      {"kind":"unavailable","message":"ldap down"} */

/* What the daemon offers the plugin. */
typedef struct gh_host_v1 {
  uint32_t abi_major;
  uint32_t abi_minor;
  /* Forward a log line to the daemon's log. Never pass secrets. */
  void (*log)(uint32_t level, const uint8_t *instance, size_t instance_len,
              const uint8_t *message, size_t message_len);
} gh_host_v1;

/* Called exactly once per call (and by create on failure). */
typedef void (*gh_complete_fn)(void *user_data, int32_t status,
                               const uint8_t *data, size_t len);

/* What the plugin offers the daemon. */
typedef struct gh_plugin_v1 {
  uint32_t abi_major; /* must be GH_ABI_MAJOR */
  uint32_t abi_minor;
  /* NUL-terminated JSON, valid forever:
     {"sdk_version":"0.1.0","name":"…",
      "authenticators":[{"type":"…","flow":"password"|"redirect",
                         "config_schema":{…},"secret_settings":["…"]}],
      "verifiers":[{"type":"…","config_schema":{…},"secret_settings":[]}]} */
  const char *descriptor;
  /* Create an instance of `type_name` (GH_KIND_*). `config` is
     {"name":"…","settings":{…},"state_dir":"…"|null,
     "config_dir":"…"|null,"http":{"timeout_ms":10000,
     "connect_timeout_ms":5000,"user_agent":"…","ca_file":"…"|null,
     "proxy":"…"|null,"danger_allow_http":false}}
     (config_dir: for relative paths in settings; http: the daemon's [http],
     ca_file adds to the system roots; absent from older daemons.)
     Returns an opaque handle, or NULL after calling on_error(user_data,
     GH_ERROR, PluginError JSON). */
  void *(*create)(uint32_t kind, const uint8_t *type_name, size_t type_len,
                  const uint8_t *config, size_t config_len,
                  gh_complete_fn on_error, void *user_data);
  /* Run `method` on an instance: "login", "continue_login", "start",
     "finish", "metadata" (authenticators) or "verify" (verifiers), with the
     request JSON. Calls complete() exactly once. */
  void (*call)(void *instance, const uint8_t *method, size_t method_len,
               const uint8_t *request, size_t request_len,
               gh_complete_fn complete, void *user_data);
  /* Release an instance. Calls still running keep what they need. */
  void (*destroy)(void *instance);
} gh_plugin_v1;

/* The one exported symbol. */
const gh_plugin_v1 *gatehouse_plugin_entry(const gh_host_v1 *host);

#ifdef __cplusplus
}
#endif

#endif /* GATEHOUSE_PLUGIN_H */
