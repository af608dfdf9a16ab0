/* xrt_xclbin: an xclbin's UUID, kernels, compute units and arguments (see xrt_xclbin.h).
 *
 * The EMBEDDED_METADATA section is XML written by v++ (or by xclbin_writer); only the <kernel>,
 * <arg> and <instance> elements and a few attributes are read, by scanning for them. A full XML
 * parser would accept more spellings, but v++ writes one, and XRT itself reads these same
 * attributes. */
#include "xrt_xclbin.h"

#include <xclbin.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SECTION_BYTES ((size_t)64 << 20)

static hlt_status fail(char *err, size_t errlen, hlt_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static hlt_status fail(char *err, size_t errlen, hlt_status st, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

static bool read_at(int fd, void *buf, size_t n, uint64_t off)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return false;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return true;
}

/* The value of attribute `name` in the tag [tag, end) into out; false if absent. */
static bool attr(const char *tag, const char *end, const char *name, char *out, size_t len)
{
    size_t nl = strlen(name);
    for (const char *p = tag + 1; p + nl + 2 < end; p++) {
        if ((p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n' && p[-1] != '\r') ||
            strncmp(p, name, nl) || p[nl] != '=' || p[nl + 1] != '"')
            continue;
        const char *v = p + nl + 2, *q = memchr(v, '"', (size_t)(end - v));
        if (!q)
            return false;
        snprintf(out, len, "%.*s", (int)(q - v), v);
        return true;
    }
    return false;
}

/* Next element <name ...> at or after p (before end); sets *tag_end to its '>'. */
static const char *next_elem(const char *p, const char *end, const char *name, const char **tag_end)
{
    size_t nl = strlen(name);
    while ((p = strstr(p, "<")) && p < end) {
        if (!strncmp(p + 1, name, nl) &&
            (p[nl + 1] == ' ' || p[nl + 1] == '\t' || p[nl + 1] == '\n' || p[nl + 1] == '\r')) {
            const char *gt = strchr(p, '>');
            if (!gt || gt > end)
                return NULL;
            *tag_end = gt;
            return p;
        }
        p++;
    }
    return NULL;
}

static int cmp_base(const void *a, const void *b)
{
    const struct ip_data *x = *(const struct ip_data *const *)a,
                         *y = *(const struct ip_data *const *)b;
    return x->m_base_address < y->m_base_address ? -1 : x->m_base_address > y->m_base_address;
}

static void cus_from_ip_layout(const uint8_t *sec, size_t size, const char *kernel,
                               xrt_kernel_desc_t *out)
{
    size_t hdr = offsetof(struct ip_layout, m_ip_data);
    if (size < hdr)
        return;
    const struct ip_layout *ipl = (const void *)sec;
    size_t n = (size - hdr) / sizeof(struct ip_data);
    if (ipl->m_count >= 0 && (size_t)ipl->m_count < n)
        n = (size_t)ipl->m_count;
    const struct ip_data *sel[XRT_MAX_CUS];
    size_t k = 0, kl = strlen(kernel);
    for (size_t i = 0; i < n && k < XRT_MAX_CUS; i++) {
        const struct ip_data *d = &ipl->m_ip_data[i];
        const char *nm = (const char *)d->m_name;
        if (d->m_type == IP_KERNEL && memchr(nm, '\0', sizeof d->m_name) &&
            !strncmp(nm, kernel, kl) && nm[kl] == ':')
            sel[k++] = d;
    }
    qsort(sel, k, sizeof *sel, cmp_base);
    for (size_t i = 0; i < k; i++)
        snprintf(out->cus[i], XRT_NAME_MAX, "%s", (const char *)sel[i]->m_name + kl + 1);
    out->n_cus = (int)k;
}

/* Kernels, and the arguments (and, without IP_LAYOUT, instances) of `kernel`. */
static hlt_status scan_xml(const char *xml, size_t len, const char *kernel, bool want_cus,
                           xrt_kernel_desc_t *out, const char *path, char *err, size_t errlen)
{
    const char *end = xml + len, *te, *k = xml, *body = NULL, *body_end = NULL;
    size_t off = 0;
    while ((k = next_elem(k, end, "kernel", &te))) {
        char nm[XRT_NAME_MAX];
        if (attr(k, te, "name", nm, sizeof nm)) {
            int w = snprintf(out->kernels + off, sizeof out->kernels - off, "%s%s", off ? ", " : "",
                             nm);
            if (w > 0 && off + (size_t)w < sizeof out->kernels)
                off += (size_t)w;
            if (!strcmp(nm, kernel) && !body) {
                body = te;
                const char *close = strstr(te, "</kernel>");
                body_end = te[-1] == '/' ? te : close && close < end ? close : end;
            }
        }
        k = te;
    }
    if (!body)
        return fail(err, errlen, HLT_INVALID_ARGUMENT, "kernel '%s' is not in %s (its kernels: %s)",
                    kernel, path, off ? out->kernels : "none");
    bool seen[XRT_MAX_ARGS] = {false};
    for (const char *a = body; (a = next_elem(a, body_end, "arg", &te)); a = te) {
        char nm[XRT_NAME_MAX], q[16] = "", id[16] = "";
        attr(a, te, "name", nm, sizeof nm);
        attr(a, te, "addressQualifier", q, sizeof q);
        if (!attr(a, te, "id", id, sizeof id) || !id[0])
            continue; /* no-index args (OpenCL work sizes) are not set by the host */
        char *e;
        long i = strtol(id, &e, 10);
        if (*e || i < 0 || i >= XRT_MAX_ARGS || seen[i])
            return fail(err, errlen, HLT_INVALID_ARGUMENT,
                        "%s: kernel '%s' argument id '%s' is invalid or repeated (at most %d "
                        "arguments)",
                        path, kernel, id, XRT_MAX_ARGS);
        seen[i] = true;
        snprintf(out->args[i].name, XRT_NAME_MAX, "%s", nm);
        out->args[i].is_buffer = !strcmp(q, "1");
        if (i + 1 > out->n_args)
            out->n_args = (int)i + 1;
    }
    for (int i = 0; i < out->n_args; i++)
        if (!seen[i])
            return fail(err, errlen, HLT_INVALID_ARGUMENT,
                        "%s: kernel '%s' has no argument with id %d", path, kernel, i);
    if (want_cus)
        for (const char *in = body;
             out->n_cus < XRT_MAX_CUS && (in = next_elem(in, body_end, "instance", &te)); in = te)
            if (attr(in, te, "name", out->cus[out->n_cus], XRT_NAME_MAX))
                out->n_cus++;
    return HLT_OK;
}

hlt_status xrt_xclbin_describe(const char *path, const char *kernel, xrt_kernel_desc_t *out,
                               char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    hlt_status st = HLT_OK;
    uint8_t *ipl = NULL;
    char *xml = NULL;
    struct axlf_section_header *sh = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        st = fail(err, errlen, HLT_NOT_FOUND, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    struct axlf top;
    if ((size_t)sb.st_size < sizeof top || !read_at(fd, &top, sizeof top, 0) ||
        memcmp(top.m_magic, "xclbin2", 8)) {
        st = fail(err, errlen, HLT_INVALID_ARGUMENT, "%s is not an xclbin (no xclbin2 header)",
                  path);
        goto done;
    }
    uint32_t ns = top.m_header.m_numSections;
    size_t sh_off = offsetof(struct axlf, m_sections);
    if (ns == 0 || ns > XCLBIN_MAX_NUM_SECTION ||
        sh_off + (size_t)ns * sizeof *sh > (size_t)sb.st_size) {
        st = fail(err, errlen, HLT_INVALID_ARGUMENT, "%s: corrupt xclbin (%u sections)", path, ns);
        goto done;
    }
    memcpy(out->uuid, &top.m_header.uuid, 16);
    sh = malloc((size_t)ns * sizeof *sh);
    if (!sh || !read_at(fd, sh, (size_t)ns * sizeof *sh, sh_off)) {
        st = fail(err, errlen, HLT_INVALID_ARGUMENT, "%s: cannot read the section headers", path);
        goto done;
    }
    const struct axlf_section_header *s_ip = NULL, *s_xml = NULL;
    for (uint32_t i = 0; i < ns; i++) {
        if (sh[i].m_sectionOffset > (uint64_t)sb.st_size ||
            sh[i].m_sectionSize > (uint64_t)sb.st_size - sh[i].m_sectionOffset) {
            st = fail(err, errlen, HLT_INVALID_ARGUMENT, "%s: section %u lies outside the file",
                      path, i);
            goto done;
        }
        if (sh[i].m_sectionKind == IP_LAYOUT && !s_ip)
            s_ip = &sh[i];
        if (sh[i].m_sectionKind == EMBEDDED_METADATA && !s_xml)
            s_xml = &sh[i];
    }
    if (!s_xml || s_xml->m_sectionSize == 0 || s_xml->m_sectionSize > MAX_SECTION_BYTES ||
        (s_ip && s_ip->m_sectionSize > MAX_SECTION_BYTES)) {
        st = fail(err, errlen, HLT_INVALID_ARGUMENT,
                  "%s: no usable EMBEDDED_METADATA section (kernel descriptions)", path);
        goto done;
    }
    xml = malloc(s_xml->m_sectionSize + 1);
    if (s_ip)
        ipl = malloc(s_ip->m_sectionSize ? s_ip->m_sectionSize : 1);
    if (!xml || (s_ip && !ipl) || !read_at(fd, xml, s_xml->m_sectionSize, s_xml->m_sectionOffset) ||
        (s_ip && !read_at(fd, ipl, s_ip->m_sectionSize, s_ip->m_sectionOffset))) {
        st = fail(err, errlen, HLT_INVALID_ARGUMENT, "%s: cannot read the metadata sections", path);
        goto done;
    }
    xml[s_xml->m_sectionSize] = '\0';
    size_t xml_len = strlen(xml); /* v++ pads the section with NULs */
    if ((st = scan_xml(xml, xml_len, kernel, !s_ip, out, path, err, errlen)))
        goto done;
    if (s_ip)
        cus_from_ip_layout(ipl, s_ip->m_sectionSize, kernel, out);
    if (out->n_cus == 0)
        st = fail(err, errlen, HLT_INVALID_ARGUMENT, "%s: kernel '%s' has no compute units", path,
                  kernel);
done:
    if (fd >= 0)
        close(fd);
    free(sh);
    free(ipl);
    free(xml);
    return st;
}
