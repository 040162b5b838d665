/* test_strict.c: the core's strict parsers (issue 21, items 17, 18): JSON
 * with trailing text or duplicate keys, environment variables out of range,
 * and error messages that keep their reason after a very long path. */
#include "core/env.h"
#include "core/json.h"
#include "data/task.h"
#include "testlib.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

TEST(strict_json_refuses_trailing_and_duplicates) {
    sx_err err;
    static const struct { const char *text, *want; } bad[] = {
        {"{\"a\": 1} x", "text after the value at line 1, column 10"},
        {"{\"a\": 1}\n}", "line 2"},
        {"{\"a\": 1, \"a\": 2}", "\"a\" appears twice"},
        {"{\"o\": {\"k\": 1, \"z\": 0, \"k\": 3}}", "\"k\" appears twice"},
        {"[1e400]", "out of range"},
        {"{\"a\": }", "not valid JSON (line 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        cJSON *r = sx_json_parse(bad[i].text, strlen(bad[i].text), "f.json", &err);
        CHECKF(!r && strstr(err.msg, bad[i].want) && !strncmp(err.msg, "f.json: ", 8), "%s -> '%s'", bad[i].text, err.msg);
        cJSON_Delete(r);
    }
    const char *ok = " {\"a\": [1, {\"a\": 2}], \"b\": {\"a\": 3}}\r\n\t ";
    cJSON *r = sx_json_parse(ok, strlen(ok), "f.json", &err);
    CHECKF(r && cJSON_GetObjectItem(r, "b"), "%s", err.msg);
    cJSON_Delete(r);
    // a NUL inside the bytes is refused, not read as the end
    CHECK(!sx_json_parse("{}\0{", 4, "f.json", &err) && strstr(err.msg, "NUL"));
    // config.json goes through the same parser
    mae_config c;
    CHECK(config_parse_json("{\"hidden_size\": 64} {}", &c, &err) == -1 && strstr(err.msg, "text after"));
    CHECK(config_parse_json("{\"hidden_size\": 64, \"hidden_size\": 32}", &c, &err) == -1 && strstr(err.msg, "twice"));
    // load from a file, with the path in the message
    tl_write_text(tl_path("t.json"), "{\"x\": 1}}");
    r = sx_json_load(tl_path("t.json"), 1024, &err);
    CHECK(!r && strstr(err.msg, "t.json: not valid JSON (text after"));
    // and so does a task file
    const char *d = tl_tmpdir();
    CHECK(tl_synthetic_task(d, 2) == 0);
    char tj[700], *orig = NULL;
    snprintf(tj, sizeof tj, "%s/task.json", d);
    task t;
    CHECKF(task_load(tj, d, &t, &err) == 0, "%s", err.msg);
    task_free(&t);
    orig = tl_read_file(tj, NULL);
    char *tj_bad = malloc(strlen(orig ? orig : "") + 8);
    sprintf(tj_bad, "%s ]", orig ? orig : "");
    tl_write_text(tj, tj_bad);
    CHECKF(task_load(tj, d, &t, &err) == -1 && strstr(err.msg, "task.json: not valid JSON (text after"), "%s", err.msg);
    free(tj_bad);
    free(orig);
    tl_write_text(tl_path("big.json"), "{\"x\": \"0123456789\"}");
    CHECK(!sx_json_load(tl_path("big.json"), 8, &err) && strstr(err.msg, "larger than 8"));
}

TEST(strict_env_ranges) {
    sx_err err;
    long v;
    int f;
    setenv("SX_TEST_N", "12", 1);
    CHECK(sx_env_long("SX_TEST_N", 1, 64, 5, &v, &err) == 0 && v == 12);
    static const char *bad[] = {"0", "65", "1e3", "12abc", "nan", "-3", " ", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("SX_TEST_N", bad[i], 1);
        CHECKF(sx_env_long("SX_TEST_N", 1, 64, 5, &v, &err) == -1 && v == 5 && strstr(err.msg, "SX_TEST_N=") &&
               strstr(err.msg, "[1, 64]"), "'%s' -> %s", bad[i], err.msg);
    }
    setenv("SX_TEST_N", "", 1);
    CHECK(sx_env_long("SX_TEST_N", 1, 64, 5, &v, &err) == 0 && v == 5);
    unsetenv("SX_TEST_N");
    CHECK(sx_env_flag("SX_TEST_N", 1, &f, &err) == 0 && f == 1);
    setenv("SX_TEST_N", "2", 1);
    CHECK(sx_env_flag("SX_TEST_N", 1, &f, &err) == -1);
    unsetenv("SX_TEST_N");
    const char *had = getenv("OMP_NUM_THREADS");
    char keep[64] = "";
    if (had) snprintf(keep, sizeof keep, "%s", had);
    setenv("OMP_NUM_THREADS", "0", 1);
    CHECK(sx_env_check(&err) == -1 && strstr(err.msg, "OMP_NUM_THREADS=0"));
    if (had) setenv("OMP_NUM_THREADS", keep, 1); else unsetenv("OMP_NUM_THREADS");
    setenv("SKELEX_NO_PIN", "0", 1);
    CHECK(sx_env_check(&err) == -1 && strstr(err.msg, "SKELEX_NO_PIN=0"));
    unsetenv("SKELEX_NO_PIN");
    setenv("SKELEX_SPLIT", "yes", 1);
    CHECK(sx_env_check(&err) == -1 && strstr(err.msg, "SKELEX_SPLIT"));
    unsetenv("SKELEX_SPLIT");
    CHECK(sx_env_check(&err) == 0);
}

TEST(strict_long_error_keeps_reason) {
    char path[3001];
    memset(path, 'd', 3000);
    path[3000] = 0;
    path[0] = '/';
    sx_err err;
    sx_fail(&err, "%s: not a regular file (a FIFO, socket or device is never read)", path);
    size_t n = strlen(err.msg);
    CHECK(n < sizeof err.msg && n > 1500);
    CHECK(!strncmp(err.msg, "/ddd", 4) && strstr(err.msg, "...") && strstr(err.msg, "is never read)"));
    // short messages are untouched, and a message may quote its own buffer
    sx_fail(&err, "%s", "short");
    sx_fail(&err, "outer: %s", err.msg);
    CHECK(!strcmp(err.msg, "outer: short"));
}
