/* Test fixtures (see fixture.h). */
#include "fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *fx_source_root(void)
{
    const char *s = getenv("HLT_SOURCE_ROOT");
    return s ? s : ".";
}

const char *fx_build_root(void)
{
    const char *s = getenv("HLT_BUILD_ROOT");
    return s ? s : "build";
}

static void deadline_in(struct timespec *ts, int seconds)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += seconds;
}

/* ---- server ---- */

static void *reader_main(void *arg)
{
    fx_server_t *s = arg;
    char buf[4096];
    for (;;) {
        ssize_t n = read(s->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        pthread_mutex_lock(&s->mu);
        if (n <= 0) {
            s->eof = true;
        } else {
            if (s->log_len + (size_t)n + 1 > s->log_cap) {
                size_t cap = (s->log_cap ? s->log_cap * 2 : 8192) + (size_t)n;
                char *p = realloc(s->log, cap);
                if (p) {
                    s->log = p;
                    s->log_cap = cap;
                }
            }
            if (s->log_len + (size_t)n + 1 <= s->log_cap) {
                memcpy(s->log + s->log_len, buf, (size_t)n);
                s->log_len += (size_t)n;
                s->log[s->log_len] = '\0';
            }
        }
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mu);
        if (n <= 0)
            return NULL;
    }
}

bool fx_server_start(fx_server_t *s, const char *const *extra_args)
{
    memset(s, 0, sizeof *s);
    s->pid = -1;
    s->fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);

    char exe[4096], repo[4096], repo_arg[4200];
    snprintf(exe, sizeof exe, "%s/server/hltinfer-server", fx_build_root());
    snprintf(repo, sizeof repo, "%s/models", fx_source_root());
    snprintf(repo_arg, sizeof repo_arg, "--model-repository=%s", repo);
    const char *argv[32] = {exe, repo_arg, "--grpc-port=0", "--grpc-address=127.0.0.1",
                            "--http-port=0", "--metrics-port=0"};
    size_t n = 6;
    for (size_t i = 0; extra_args && extra_args[i] && n < 31; i++)
        argv[n++] = extra_args[i];
    argv[n] = NULL;

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    /* criterion's own pipes must not leak into the server (its runner waits on them) */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    int e = posix_spawn(&s->pid, exe, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (e) {
        close(fds[0]);
        s->pid = -1;
        fprintf(stderr, "fixture: cannot start %s: %s\n", exe, strerror(e));
        return false;
    }
    s->fd = fds[0];
    if (pthread_create(&s->reader, NULL, reader_main, s) != 0) {
        close(s->fd);
        s->fd = -1;
        return false;
    }
    struct timespec until;
    deadline_in(&until, 60);
    pthread_mutex_lock(&s->mu);
    const char *line = NULL;
    while (!s->eof &&
           !(s->log && (line = strstr(s->log, "event=server_started")) && strchr(line, '\n')))
        if (pthread_cond_timedwait(&s->cond, &s->mu, &until) == ETIMEDOUT)
            break;
    if (line) {
        const char *p = strstr(line, "grpc_port=");
        if (p)
            s->port = atoi(p + 10);
    }
    pthread_mutex_unlock(&s->mu);
    if (s->port <= 0) {
        fprintf(stderr, "fixture: the server did not start:\n%s\n", fx_server_log(s));
        return false;
    }
    snprintf(s->url, sizeof s->url, "127.0.0.1:%d", s->port);
    return true;
}

const char *fx_server_log(fx_server_t *s)
{
    return s->log ? s->log : "";
}

int fx_server_stop(fx_server_t *s)
{
    int status = -1;
    if (s->pid > 0) {
        kill(s->pid, SIGCONT); /* in case a test left it stopped */
        kill(s->pid, SIGTERM);
        /* stderr reaches EOF when the server exits: wait for that, boundedly. */
        struct timespec until;
        deadline_in(&until, 60);
        pthread_mutex_lock(&s->mu);
        bool killed = false;
        while (!s->eof)
            if (pthread_cond_timedwait(&s->cond, &s->mu, &until) == ETIMEDOUT) {
                kill(s->pid, SIGKILL);
                killed = true;
                break;
            }
        pthread_mutex_unlock(&s->mu);
        int ws;
        if (waitpid(s->pid, &ws, 0) == s->pid && !killed)
            status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        s->pid = -1;
    }
    if (s->fd >= 0) {
        pthread_join(s->reader, NULL);
        close(s->fd);
        s->fd = -1;
    }
    if (status != 0 && s->log)
        fprintf(stderr, "fixture: server exit status %d, its log:\n%s\n", status, s->log);
    free(s->log);
    s->log = NULL;
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    return status;
}

int fx_dead_port_open(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

void fx_dead_port_close(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* ---- reference vectors ---- */

void *fx_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 65536 + 1 > cap) {
            cap = cap * 2 + 65536 + 1;
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    if (size)
        *size = len;
    return buf;
}

static bool load_tensor(json_t *j, const char *dir, fx_tensor_t *t)
{
    const char *name = json_string_value(json_object_get(j, "name"));
    const char *dt = json_string_value(json_object_get(j, "datatype"));
    const char *file = json_string_value(json_object_get(j, "file"));
    json_t *shape = json_object_get(j, "shape");
    if (!name || !dt || !file || !json_is_array(shape) || json_array_size(shape) > 8)
        return false;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->datatype = hlt_dtype_from_name(dt, strlen(dt));
    t->rank = json_array_size(shape);
    for (size_t i = 0; i < t->rank; i++)
        t->shape[i] = json_integer_value(json_array_get(shape, i));
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    t->data = fx_read_file(path, &t->size);
    return t->data != NULL;
}

bool fx_case_load(const char *model, const char *name, fx_case_t *c)
{
    memset(c, 0, sizeof *c);
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/models/%s/reference", fx_source_root(), model);
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        return false;
    bool ok = true;
    json_t *ins = json_object_get(j, "inputs"), *outs = json_object_get(j, "outputs");
    for (size_t i = 0; ok && i < json_array_size(ins) && i < FX_MAX_TENSORS; i++, c->n_in++)
        ok = load_tensor(json_array_get(ins, i), dir, &c->in[i]);
    for (size_t i = 0; ok && i < json_array_size(outs) && i < FX_MAX_TENSORS; i++, c->n_out++)
        ok = load_tensor(json_array_get(outs, i), dir, &c->out[i]);
    json_decref(j);
    for (size_t i = 0; i < c->n_in; i++)
        c->inputs[i] = (hlt_input_t){c->in[i].name,  c->in[i].datatype, c->in[i].rank,
                                     c->in[i].shape, c->in[i].data,     c->in[i].size};
    if (!ok)
        fx_case_free(c);
    return ok;
}

void fx_case_free(fx_case_t *c)
{
    for (size_t i = 0; i < c->n_in; i++)
        free(c->in[i].data);
    for (size_t i = 0; i < c->n_out; i++)
        free(c->out[i].data);
    memset(c, 0, sizeof *c);
}

hlt_infer_request_t fx_case_request(const char *model, fx_case_t *c)
{
    return (hlt_infer_request_t){.model = model, .inputs = c->inputs, .n_inputs = c->n_in};
}

bool fx_close_f32(const void *got, const void *want, size_t n, char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++) {
        float g, w;
        memcpy(&g, (const char *)got + 4 * i, 4);
        memcpy(&w, (const char *)want + 4 * i, 4);
        if (!(fabsf(g - w) <= 1e-5f + 1e-4f * fabsf(w))) {
            snprintf(why, whylen, "element %zu: got %.9g, want %.9g", i, g, w);
            return false;
        }
    }
    return true;
}

bool fx_case_check(const fx_case_t *c, const hlt_infer_result_t *r, bool only_present, char *why,
                   size_t whylen)
{
    size_t seen = 0;
    for (size_t i = 0; i < c->n_out; i++) {
        const fx_tensor_t *t = &c->out[i];
        const hlt_output_t *o = hlt_infer_result_output_by_name(r, t->name);
        if (!o) {
            if (only_present)
                continue;
            snprintf(why, whylen, "output '%s' missing", t->name);
            return false;
        }
        seen++;
        if (o->datatype != t->datatype || o->rank != t->rank ||
            memcmp(o->shape, t->shape, t->rank * sizeof t->shape[0]) != 0 || o->size != t->size) {
            snprintf(why, whylen,
                     "output '%s': datatype/shape/size differ (%s rank %zu, %zu "
                     "bytes)",
                     t->name, o->datatype_name, o->rank, o->size);
            return false;
        }
        char sub[256];
        if (!fx_close_f32(o->data, t->data, t->size / 4, sub, sizeof sub)) {
            snprintf(why, whylen, "output '%s': %s", t->name, sub);
            return false;
        }
    }
    if (seen != hlt_infer_result_output_count(r)) {
        snprintf(why, whylen, "result has %zu outputs, %zu checked",
                 hlt_infer_result_output_count(r), seen);
        return false;
    }
    return true;
}

/* ---- subprocesses ---- */

bool fx_tmpdir(char *path, size_t len)
{
    const char *base = getenv("TMPDIR");
    snprintf(path, len, "%s/hltinfer-test-XXXXXX", base ? base : "/tmp");
    return mkdtemp(path) != NULL;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

void fx_rmdir(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

bool fx_run(const char *const *argv, fx_run_t *r)
{
    memset(r, 0, sizeof *r);
    char dir[256], out[300], err[300];
    if (!fx_tmpdir(dir, sizeof dir))
        return false;
    snprintf(out, sizeof out, "%s/stdout", dir);
    snprintf(err, sizeof err, "%s/stderr", dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    pid_t pid;
    int e = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    bool ok = false;
    if (e == 0) {
        int ws;
        if (waitpid(pid, &ws, 0) == pid) {
            r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
            r->out = fx_read_file(out, NULL);
            r->err = fx_read_file(err, NULL);
            ok = r->out && r->err;
        }
    }
    fx_rmdir(dir);
    if (!ok)
        fx_run_free(r);
    return ok;
}

void fx_run_free(fx_run_t *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}
