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
 * VerifiedToken, PluginError. Each is shown below where it is used, and
 * sdk/README.md ("Writing a plugin in C") has an example of every one.
 * Parse them with a real JSON parser (strings may hold \" and \u00e9
 * escapes) and ignore fields you do not know: later 1.x daemons add some.
 *
 * Build: compile with -fvisibility=hidden if you like (only
 * GH_PLUGIN_EXPORT symbols are then exported) and embed a manifest:
 *
 *     GH_PLUGIN_MANIFEST("{\"name\":\"my-plugin\",\"version\":\"1.0.0\","
 *                        "\"sdk_version\":\"" GH_SDK_VERSION "\",\"abi\":1,"
 *                        "\"authenticators\":[\"my_type\"],\"verifiers\":[],"
 *                        "\"capabilities\":[\"network\"]}");
 *     GH_PLUGIN_EXPORT const gh_plugin_v1 *gatehouse_plugin_entry(const gh_host_v1 *host) { ... }
 *
 *     cc -shared -fPIC -fvisibility=hidden -I sdk/include -o libmy_plugin.so my_plugin.c
 *
 * Crashes: a panic cannot happen in C, but a crash can. In-process (the
 * default), abort() or a segfault in a plugin ends the whole daemon. Under
 * `isolation = "process"` the plugin runs in a child process; when it dies,
 * the calls in flight fail with 503 backend_unavailable (or the next
 * authenticator in order answers), and the child is restarted with backoff.
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

/* The version of the SDK this header belongs to (gatehouse-sdk on
   crates.io). Put it in the descriptor's and the manifest's "sdk_version":
   the daemon shows it (`gatehouse plugins`, its log) so an operator can
   tell which SDK a plugin was built with. It does not decide whether a
   library loads; GH_ABI_MAJOR does. */
#define GH_SDK_VERSION "0.1.0"

/* Marks the entry symbol as exported even when the library is compiled with
   -fvisibility=hidden (recommended: the daemon looks up only
   gatehouse_plugin_entry). */
#if defined(__GNUC__) || defined(__clang__)
#define GH_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define GH_PLUGIN_EXPORT
#endif

/* Embeds the plugin manifest: a JSON object in the ELF section
   ".gatehouse_manifest", which the daemon reads from the file BEFORE
   loading it. A library without one is not a gatehouse plugin: plugin_dirs
   skips it, and `library = "..."` refuses it. Use once per library, at file
   scope, with a string literal:
     {"name":"...","version":"...","sdk_version":GH_SDK_VERSION,"abi":1,
      "authenticators":["type", ...],   (optional: checked against the
      "verifiers":["type", ...],         descriptor after loading)
      "capabilities":["network"|"files"|"state_dir"|"subprocess", ...]}
   "abi" must be GH_ABI_MAJOR; a library naming another ABI is refused
   before any of its code runs. */
#if defined(__GNUC__) || defined(__clang__)
#define GH_PLUGIN_MANIFEST(json)                                              \
  __attribute__((used, section(".gatehouse_manifest"))) static const char \
      gh_plugin_manifest_[] = json
#else
#error "GH_PLUGIN_MANIFEST needs GCC or Clang (an ELF section attribute)"
#endif

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
#define GH_ERROR 1 /* data is a PluginError JSON: {"kind":"..."} plus, for
                      every kind but invalid_credentials, "message":
                        {"kind":"invalid_credentials"}
                        {"kind":"denied","message":"not in group ops"}
                        {"kind":"unavailable","message":"ldap down"}
                        {"kind":"misconfigured","message":"user: missing"}
                        {"kind":"bad_request","message":"no code parameter"}
                        {"kind":"unsupported","message":"no redirect login"}
                        {"kind":"internal","message":"out of memory"}
                        {"kind":"invalid_token","message":{"reason":"expired",
                                                           "detail":"..."}}
                        {"kind":"invalid_assertion","message":{"reason":
                                              "audience","detail":"..."}}
                      What the daemon does with each, and the HTTP status a
                      client sees: sdk/README.md. Never put a password or
                      token in a message. */

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
  /* NUL-terminated JSON, valid forever (sdk_version: GH_SDK_VERSION; name:
     for logs; flow: the login shape of every instance of the type;
     config_schema: a JSON Schema of the settings; secret_settings: settings
     that hold secrets, which operators may then give as K_file or
     K_credential):
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
  /* Run `method` on an instance with the request JSON; call complete()
     exactly once with GH_OK and the result, or GH_ERROR and a PluginError.
       "login"   {"username":"ann","password":"…","remote_addr":"10.0.0.7"}
                 (remote_addr may be absent)
                 → {"step":"authenticated","uid":"ann","username":"ann",
                    "case_insensitive":false,"email":"ann@example.org",
                    "first_name":"Ann","last_name":"Lee",
                    "groups":["staff"],"attributes":{"cn":["Ann"]}}
                    (only uid and username are required)
                 or {"step":"challenge","prompt":"Code:","echo":false,
                     "state":<any JSON, handed back to continue_login>}
       "continue_login" {"state":<the challenge's state>,"response":"123456"}
                 → as "login"
       "start"   {"return_to":null,"state":"<random>","callback_url":"https://…"}
                 → {"url":"https://idp/authorize?…&state=<random>",
                    "flow_state":<any JSON, handed back to finish>}
       "finish"  {"params":{"code":"…","state":"…"},"flow_state":<JSON>|null,
                  "callback_url":"https://…"|null} → as "login"
       "metadata" {} → {"content_type":"application/samlmetadata+xml","body":"…"}
       "verify"  {"token":"…","audience":null,"unit_primitive":"duo_chat",
                  "request":null}
                 → {"issuer":"…","subject":"…","audience":["…"],
                    "scopes":["…"],"expires_at":1700000000,"claims":{…}}
     A method the instance does not have answers
     {"kind":"unsupported","message":"…"}. */
  void (*call)(void *instance, const uint8_t *method, size_t method_len,
               const uint8_t *request, size_t request_len,
               gh_complete_fn complete, void *user_data);
  /* Release an instance. Calls still running keep what they need. */
  void (*destroy)(void *instance);
} gh_plugin_v1;

/* The one exported symbol. Define it with GH_PLUGIN_EXPORT. */
GH_PLUGIN_EXPORT const gh_plugin_v1 *gatehouse_plugin_entry(const gh_host_v1 *host);

#ifdef __cplusplus
}
#endif

#endif /* GATEHOUSE_PLUGIN_H */
