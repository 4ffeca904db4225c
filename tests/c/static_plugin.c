/*
 * A tiny gatehouse plugin in C, built by the end-to-end tests against
 * sdk/include/gatehouse_plugin.h:
 *
 *   cc -shared -fPIC -I sdk/include -o libc_static.so tests/c/static_plugin.c
 *
 * Authenticator type GH_TYPE (default "c_static") accepts one user, whose
 * name and password come from the settings {"user": "...", "password": "..."}.
 * Variants for the loader tests: -DGH_TEST_ABI_MAJOR=2 (wrong ABI),
 * -DGH_NO_ENTRY (no entry symbol), -DGH_GROUP='"name"' (the one group a
 * user gets; default "c-plugin-users": tells two builds apart),
 * -DGH_NO_MANIFEST (not a gatehouse plugin: no manifest section),
 * -DGH_MANIFEST_TYPE='"name"' (the manifest lists another type than the
 * descriptor), -DGH_MANIFEST_ABI='"2"' (the manifest names another ABI),
 * -DGH_VERIFIER_TYPE='"name"' (the library also claims a verifier type of
 * that name; it never builds one: for the type-clash tests).
 * Every other variant embeds a manifest (ABI 1 even when the table says
 * otherwise, so the loader's own checks are what refuses them).
 *
 * Its JSON scanning is a test shortcut (no escapes); see
 * sdk/examples/c/password_plugin.c for a plugin to copy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gatehouse_plugin.h"

#ifndef GH_TYPE
#define GH_TYPE "c_static"
#endif
#ifndef GH_GROUP
#define GH_GROUP "c-plugin-users"
#endif
#ifndef GH_TEST_ABI_MAJOR
#define GH_TEST_ABI_MAJOR GH_ABI_MAJOR
#endif
#ifndef GH_MANIFEST_TYPE
#define GH_MANIFEST_TYPE GH_TYPE
#endif
#ifdef GH_VERIFIER_TYPE
#define GH_VERIFIERS_JSON ",\"verifiers\":[{\"type\":\"" GH_VERIFIER_TYPE "\",\"config_schema\":{\"type\":\"object\"}}]"
#define GH_MANIFEST_VERIFIERS "\"" GH_VERIFIER_TYPE "\""
#else
#define GH_VERIFIERS_JSON ""
#define GH_MANIFEST_VERIFIERS ""
#endif
#ifndef GH_MANIFEST_ABI
#define GH_MANIFEST_ABI "1"
#endif

struct instance {
  char *user;
  char *password;
};

/* Finds "key":"value" in a flat JSON text and returns a malloc'd copy of
   value (no escapes handled: good enough for a test plugin). */
static char *json_string(const uint8_t *json, size_t len, const char *key) {
  char pattern[64];
  size_t plen;
  const char *text, *p, *end;
  char *copy, *out;
  copy = malloc(len + 1);
  if (!copy) return NULL;
  memcpy(copy, json, len);
  copy[len] = 0;
  snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
  plen = strlen(pattern);
  text = copy;
  p = strstr(text, pattern);
  if (!p) { free(copy); return NULL; }
  p += plen;
  end = strchr(p, '"');
  if (!end) { free(copy); return NULL; }
  out = malloc((size_t)(end - p) + 1);
  if (out) { memcpy(out, p, (size_t)(end - p)); out[end - p] = 0; }
  free(copy);
  return out;
}

static void reply(gh_complete_fn complete, void *user_data, int32_t status, const char *json) {
  complete(user_data, status, (const uint8_t *)json, strlen(json));
}

static void *create(uint32_t kind, const uint8_t *type_name, size_t type_len,
                    const uint8_t *config, size_t config_len,
                    gh_complete_fn on_error, void *user_data) {
  struct instance *inst;
  if (kind != GH_KIND_AUTHENTICATOR || type_len != strlen(GH_TYPE) ||
      memcmp(type_name, GH_TYPE, type_len) != 0) {
    reply(on_error, user_data, GH_ERROR, "{\"kind\":\"misconfigured\",\"message\":\"unknown type\"}");
    return NULL;
  }
  inst = calloc(1, sizeof *inst);
  inst->user = json_string(config, config_len, "user");
  inst->password = json_string(config, config_len, "password");
  if (!inst->user || !inst->password || !*inst->password) {
    free(inst->user); free(inst->password); free(inst);
    reply(on_error, user_data, GH_ERROR,
          "{\"kind\":\"misconfigured\",\"message\":\"settings need user and password\"}");
    return NULL;
  }
  return inst;
}

static void call(void *instance, const uint8_t *method, size_t method_len,
                 const uint8_t *request, size_t request_len,
                 gh_complete_fn complete, void *user_data) {
  struct instance *inst = instance;
  char *user, *password;
  char result[512];
  if (method_len != 5 || memcmp(method, "login", 5) != 0) {
    reply(complete, user_data, GH_ERROR, "{\"kind\":\"unsupported\",\"message\":\"only login\"}");
    return;
  }
  user = json_string(request, request_len, "username");
  password = json_string(request, request_len, "password");
  if (user && password && *password && strcmp(user, inst->user) == 0 &&
      strcmp(password, inst->password) == 0) {
    snprintf(result, sizeof result,
             "{\"step\":\"authenticated\",\"uid\":\"%s\",\"username\":\"%s\",\"groups\":[\"" GH_GROUP "\"]}",
             inst->user, inst->user);
    reply(complete, user_data, GH_OK, result);
  } else {
    reply(complete, user_data, GH_ERROR, "{\"kind\":\"invalid_credentials\"}");
  }
  free(user);
  free(password);
}

static void destroy(void *instance) {
  struct instance *inst = instance;
  if (!inst) return;
  free(inst->user);
  free(inst->password);
  free(inst);
}

static const gh_plugin_v1 PLUGIN = {
    GH_TEST_ABI_MAJOR,
    GH_ABI_MINOR,
    "{\"sdk_version\":\"" GH_SDK_VERSION "\",\"name\":\"c-static\",\"authenticators\":[{\"type\":\"" GH_TYPE
    "\",\"flow\":\"password\",\"config_schema\":{\"type\":\"object\"},\"secret_settings\":[\"password\"]}]" GH_VERIFIERS_JSON "}",
    create,
    call,
    destroy,
};

#ifndef GH_NO_MANIFEST
GH_PLUGIN_MANIFEST("{\"name\":\"c-static\",\"version\":\"0.1.0\",\"sdk_version\":\"" GH_SDK_VERSION
                   "\",\"abi\":" GH_MANIFEST_ABI ",\"authenticators\":[\"" GH_MANIFEST_TYPE "\"],\"verifiers\":[" GH_MANIFEST_VERIFIERS "],\"capabilities\":[]}");
#endif

#ifndef GH_NO_ENTRY
GH_PLUGIN_EXPORT const gh_plugin_v1 *gatehouse_plugin_entry(const gh_host_v1 *host) {
  static const char hello[] = "c plugin loaded";
  if (host && host->log) host->log(GH_LOG_INFO, (const uint8_t *)"c-static", 8, (const uint8_t *)hello, sizeof hello - 1);
  return &PLUGIN;
}
#else
int not_a_gatehouse_plugin(void) { return (int)PLUGIN.abi_major; }
#endif
