/* xclbin_writer: a metadata-only xclbin for one kernel (see xclbin_writer.h).
 *
 * Layout (xclbin.h): struct axlf (magic "xclbin2", header, section headers), then the sections,
 * each 8-byte aligned. The register map follows what Vitis HLS generates for an ap_ctrl_hs
 * kernel: control at 0x00, arguments from 0x10 at 12-byte spacing; buffers are 64-bit
 * pointers on a 512-bit m_axi port, scalars 32-bit on s_axilite. */
#include "xclbin_writer.h"

#include <xclbin.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CU_BASE 0x1800000u
#define CU_RANGE 0x10000u
#define BANK_KB (1024u * 1024u) /* 1 GiB per bank */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Names go into XML attributes and into 64-byte IP names: identifiers only. */
static bool is_ident(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max || isdigit((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

typedef struct strbuf {
    char *p;
    size_t len, cap;
    bool oom;
} strbuf_t;

static void sb_printf(strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap : 1024);
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

static uint32_t arg_offset(int k)
{
    return 0x10u + 0xcu * (uint32_t)k;
}

static void cu_name(const xclbin_spec_t *s, int i, char *out, size_t len)
{
    if (s->cu_names)
        snprintf(out, len, "%s", s->cu_names[i]);
    else
        snprintf(out, len, "%s_%d", s->kernel_name, i + 1);
}

static char *build_xml(const xclbin_spec_t *s, size_t *len)
{
    strbuf_t b = {0};
    sb_printf(&b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<project name=\"%s\">\n  <platform vendor=\"xilinx\" boardid=\"noop\" "
              "name=\"hltinfer\" featureRomTime=\"0\">\n    <version major=\"1\" minor=\"0\"/>\n"
              "    <description/>\n    <board name=\"noop\" vendor=\"xilinx\" fpga=\"\"/>\n"
              "    <device name=\"fpga0\" fpgaDevice=\"noop\" addrWidth=\"0\">\n"
              "      <core name=\"OCL_REGION_0\" target=\"bitstream\" type=\"clc_region\" "
              "clockFreq=\"300MHz\" numComputeUnits=\"%d\">\n",
              s->kernel_name, s->n_cus);
    sb_printf(&b,
              "        <kernel name=\"%s\" language=\"c\" vlnv=\"xilinx.com:hls:%s:1.0\" "
              "attributes=\"\" preferredWorkGroupSizeMultiple=\"0\" workGroupSize=\"1\" "
              "interrupt=\"true\" hwControlProtocol=\"ap_ctrl_hs\">\n"
              "          <port name=\"S_AXI_CONTROL\" mode=\"slave\" range=\"0x1000\" "
              "dataWidth=\"32\" portType=\"addressable\" base=\"0x0\"/>\n"
              "          <port name=\"M_AXI_GMEM\" mode=\"master\" range=\"0xFFFFFFFFFFFFFFFF\" "
              "dataWidth=\"512\" portType=\"addressable\" base=\"0x0\"/>\n",
              s->kernel_name, s->kernel_name);
    for (int k = 0; k < s->n_args; k++) {
        bool buf = s->args[k].kind == XCLBIN_ARG_BUFFER;
        sb_printf(&b,
                  "          <arg name=\"%s\" addressQualifier=\"%d\" id=\"%d\" port=\"%s\" "
                  "size=\"0x%x\" offset=\"0x%x\" hostOffset=\"0x0\" hostSize=\"0x%x\" "
                  "type=\"%s\"/>\n",
                  s->args[k].name, buf ? 1 : 0, k, buf ? "M_AXI_GMEM" : "S_AXI_CONTROL",
                  buf ? 8 : 4, arg_offset(k), buf ? 8 : 4,
                  buf ? "ap_uint&lt;512&gt;*" : "unsigned int");
    }
    for (int i = 0; i < s->n_cus; i++) {
        char nm[64];
        cu_name(s, i, nm, sizeof nm);
        sb_printf(&b,
                  "          <instance name=\"%s\">\n            <addrRemap base=\"0x%x\" "
                  "range=\"0x%x\" port=\"S_AXI_CONTROL\"/>\n          </instance>\n",
                  nm, CU_BASE + CU_RANGE * (uint32_t)i, CU_RANGE);
    }
    sb_printf(&b, "        </kernel>\n      </core>\n    </device>\n  </platform>\n</project>\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

static uint64_t fnv1a(const void *p, size_t n, uint64_t h)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 0x100000001b3ull;
    return h;
}

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static int check_spec(const xclbin_spec_t *s, char *err, size_t errlen)
{
    if (!is_ident(s->kernel_name, 40))
        return fail(err, errlen, "kernel name must be an identifier of at most 40 characters");
    if (s->n_cus < 1 || s->n_cus > XCLBIN_MAX_CUS)
        return fail(err, errlen, "compute units must be 1..%d", XCLBIN_MAX_CUS);
    if (s->n_args < 1 || s->n_args > XCLBIN_MAX_ARGS)
        return fail(err, errlen, "arguments must be 1..%d", XCLBIN_MAX_ARGS);
    for (int i = 0; s->cu_names && i < s->n_cus; i++)
        if (!is_ident(s->cu_names[i], 62 - strlen(s->kernel_name)))
            return fail(err, errlen, "compute unit name %d is not a short identifier", i);
    for (int k = 0; k < s->n_args; k++)
        if (!is_ident(s->args[k].name, 60))
            return fail(err, errlen, "argument %d: name is not an identifier", k);
    if (s->n_banks < 0 || s->n_banks > 16)
        return fail(err, errlen, "memory banks must be 0..16");
    return 0;
}

int xclbin_write(const char *path, const xclbin_spec_t *s, char *err, size_t errlen)
{
    if (check_spec(s, err, errlen))
        return -1;
    int n_banks = s->n_banks ? s->n_banks : 1, n_bufs = 0;
    for (int k = 0; k < s->n_args; k++)
        n_bufs += s->args[k].kind == XCLBIN_ARG_BUFFER;
    size_t xml_len = 0;
    char *xml = build_xml(s, &xml_len);
    if (!xml)
        return fail(err, errlen, "out of memory");

    enum { N_SECT = 4 };
    size_t sz[N_SECT] = {
        offsetof(struct mem_topology, m_mem_data) + sizeof(struct mem_data) * (size_t)n_banks,
        offsetof(struct ip_layout, m_ip_data) + sizeof(struct ip_data) * (size_t)s->n_cus,
        offsetof(struct connectivity, m_connection) +
            sizeof(struct connection) * (size_t)(n_bufs * s->n_cus),
        xml_len,
    };
    const uint32_t kind[N_SECT] = {MEM_TOPOLOGY, IP_LAYOUT, CONNECTIVITY, EMBEDDED_METADATA};
    const char *sect_name[N_SECT] = {"mem_topology", "ip_layout", "connectivity", "metadata"};
    size_t head = align8(sizeof(struct axlf) + sizeof(struct axlf_section_header) * (N_SECT - 1));
    size_t off[N_SECT], total = head;
    for (int i = 0; i < N_SECT; i++) {
        off[i] = total;
        total = align8(total + sz[i]);
    }
    unsigned char *img = calloc(1, total);
    if (!img) {
        free(xml);
        return fail(err, errlen, "out of memory");
    }
    struct axlf *top = (struct axlf *)img;
    memcpy(top->m_magic, "xclbin2", 8);
    top->m_signature_length = -1;
    memset(top->reserved, 0xff, sizeof top->reserved);
    memset(top->m_keyBlock, 0xff, sizeof top->m_keyBlock);
    uint64_t h = fnv1a(xml, xml_len, 0xcbf29ce484222325ull);
    top->m_uniqueId = h;
    struct axlf_header *hd = &top->m_header;
    hd->m_length = total;
    hd->m_versionMajor = 2;
    hd->m_versionMinor = 13;
    hd->m_mode = XCLBIN_FLAT;
    snprintf((char *)hd->m_platformVBNV, sizeof hd->m_platformVBNV, "xilinx_hltinfer_noop_1_0");
    uint64_t h2 = fnv1a(&h, sizeof h, 0x84222325cbf29ce4ull);
    memcpy((unsigned char *)&hd->uuid, &h, 8);
    memcpy((unsigned char *)&hd->uuid + 8, &h2, 8);
    hd->m_numSections = N_SECT;
    for (int i = 0; i < N_SECT; i++) {
        struct axlf_section_header *sh = &top->m_sections[i];
        sh->m_sectionKind = kind[i];
        snprintf(sh->m_sectionName, sizeof sh->m_sectionName, "%s", sect_name[i]);
        sh->m_sectionOffset = off[i];
        sh->m_sectionSize = sz[i];
    }

    struct mem_topology *mt = (struct mem_topology *)(img + off[0]);
    mt->m_count = n_banks;
    for (int b = 0; b < n_banks; b++) {
        struct mem_data *md = &mt->m_mem_data[b];
        md->m_type = MEM_DDR4;
        md->m_used = 1;
        md->m_size = BANK_KB;
        md->m_base_address = 0x4000000000ull + (uint64_t)b * BANK_KB * 1024u;
        snprintf((char *)md->m_tag, sizeof md->m_tag, "bank%d", b);
    }
    struct ip_layout *ip = (struct ip_layout *)(img + off[1]);
    ip->m_count = s->n_cus;
    for (int i = 0; i < s->n_cus; i++) {
        struct ip_data *d = &ip->m_ip_data[i];
        char nm[64];
        cu_name(s, i, nm, sizeof nm);
        d->m_type = IP_KERNEL;
        d->properties = IP_INT_ENABLE_MASK | ((uint32_t)i << IP_INTERRUPT_ID_SHIFT) |
                        ((uint32_t)AP_CTRL_HS << IP_CONTROL_SHIFT);
        d->m_base_address = CU_BASE + CU_RANGE * (uint64_t)i;
        char full[160];
        snprintf(full, sizeof full, "%s:%s", s->kernel_name, nm); /* fits: check_spec */
        memcpy(d->m_name, full, sizeof d->m_name - 1);
    }
    struct connectivity *cn = (struct connectivity *)(img + off[2]);
    cn->m_count = n_bufs * s->n_cus;
    int c = 0;
    for (int i = 0; i < s->n_cus; i++)
        for (int k = 0; k < s->n_args; k++)
            if (s->args[k].kind == XCLBIN_ARG_BUFFER)
                cn->m_connection[c++] = (struct connection){k, i, i % n_banks};
    memcpy(img + off[3], xml, xml_len);
    free(xml);

    FILE *f = fopen(path, "wb");
    if (!f) {
        free(img);
        return fail(err, errlen, "cannot create %s", path);
    }
    size_t wr = fwrite(img, 1, total, f);
    int rc = fclose(f);
    free(img);
    if (wr != total || rc != 0)
        return fail(err, errlen, "cannot write %s", path);
    return 0;
}

int xclbin_parse_args(char *s, xclbin_arg_t *args, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max)
            return -1;
        char *colon = strchr(tok, ':');
        const char *kind = colon ? colon + 1 : "buffer";
        if (colon)
            *colon = '\0';
        args[n].name = tok;
        if (!strcmp(kind, "buffer") || !strcmp(kind, "buf"))
            args[n].kind = XCLBIN_ARG_BUFFER;
        else if (!strcmp(kind, "scalar") || !strcmp(kind, "u32"))
            args[n].kind = XCLBIN_ARG_SCALAR;
        else
            return -1;
        n++;
    }
    return n;
}
