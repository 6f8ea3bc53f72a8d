/*
 * The checkpoint manifest parser on valid and hostile input: a manifest survives a serialise/parse round
 * trip; malformed JSON, wrong types, out-of-range sizes and offsets, names that could escape the step
 * directory, shards that overlap or leave gaps, bad checksums and bad base64 are all refused with
 * HCRT_ERR_CORRUPT and a message naming the field; every prefix of a valid manifest is refused without
 * a crash. Also the HCRT_FAULT rule parser shared with the collectives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/checkpoint/format.h"
#include "test.h"

static hcrt__ckpt_manifest_t sample(hcrt__ckpt_shard_t *shards, hcrt__ckpt_rank_t *ranks, hcrt__ckpt_tensor_t *t,
                                    uint64_t *sums)
{
    hcrt__ckpt_manifest_t m;
    memset(&m, 0, sizeof(m));
    m.version = 1;
    m.step = 42;
    m.world_size = 2;
    m.time_unix = 1700000000;
    snprintf(m.time, sizeof(m.time), "2023-11-14T22:13:20Z");
    snprintf(m.partner_mode, sizeof(m.partner_mode), "same-host");
    for (int r = 0; r < 2; r++) {
        memset(&ranks[r], 0, sizeof(ranks[r]));
        ranks[r].rank = r;
        snprintf(ranks[r].host, sizeof(ranks[r].host), "node%d", r);
        snprintf(ranks[r].backends, sizeof(ranks[r].backends), r ? "sim" : "cpu");
        hcrt__ckpt_file_name(ranks[r].file, sizeof(ranks[r].file), r);
        ranks[r].bytes = 4096 + 24;
        ranks[r].partner = 1 - r;
    }
    memset(t, 0, sizeof(*t));
    t->name = "layer0.weight";
    t->dtype = HCRT_F32;
    t->ndims = 2;
    t->shape[0] = 6;
    t->shape[1] = 2;
    t->row_bytes = 8;
    t->nshards = 2;
    t->shards = shards;
    for (int r = 0; r < 2; r++) {
        shards[r] = (hcrt__ckpt_shard_t){r, 4096, (uint64_t)r * 3, 3, 24, 4096, 1, &sums[r]};
        sums[r] = 0x0123456789abcdefull + (uint64_t)r;
    }
    m.nranks = 2;
    m.ranks = ranks;
    m.ntensors = 1;
    m.tensors = t;
    m.meta = (unsigned char *)"hello, world";
    m.meta_len = 12;
    return m;
}

/* Parses text after replacing the first `from` by `to`; expects CORRUPT and `field` in the message. */
static void expect_bad(const char *text, const char *from, const char *to, const char *field)
{
    char *s = malloc(strlen(text) + strlen(to) + 1), err[1024] = "";
    const char *at = strstr(text, from);
    hcrt__ckpt_manifest_t m;
    if (at == NULL) {
        fprintf(stderr, "FAIL: test bug: '%s' not in the sample\n", from);
        test_failures_++;
        free(s);
        return;
    }
    memcpy(s, text, (size_t)(at - text));
    strcpy(s + (at - text), to);
    strcat(s, at + strlen(from));
    hcrt_status_t st = hcrt__manifest_parse(s, strlen(s), "test.json", HCRT__MANIFEST_FULL, &m, err, sizeof(err));
    CHECK_MSG(st == HCRT_ERR_CORRUPT, "'%s' -> '%s' accepted (%d)", from, to, st);
    CHECK_MSG(strstr(err, field) != NULL && strstr(err, "test.json") != NULL,
              "'%s' -> '%s': message '%s' should name '%s' and the file", from, to, err, field);
    if (st == HCRT_OK)
        hcrt__manifest_free(&m);
    free(s);
}

int main(void)
{
    hcrt__ckpt_shard_t shards[2];
    hcrt__ckpt_rank_t ranks[2];
    hcrt__ckpt_tensor_t t;
    uint64_t sums[2];
    hcrt__ckpt_manifest_t m = sample(shards, ranks, &t, sums), back;
    char err[1024];

    char *text = hcrt__manifest_serialize(&m);
    CHECK(text != NULL);
    CHECK_OK(NULL, hcrt__manifest_parse(text, strlen(text), "sample", HCRT__MANIFEST_FULL, &back, err, sizeof(err)));
    CHECK(back.step == 42 && back.world_size == 2 && back.ntensors == 1 && back.nranks == 2);
    CHECK(back.meta_len == 12 && memcmp(back.meta, "hello, world", 12) == 0);
    CHECK(strcmp(back.tensors[0].name, "layer0.weight") == 0 && back.tensors[0].dtype == HCRT_F32);
    CHECK(back.tensors[0].nshards == 2 && back.tensors[0].shards[1].sums[0] == sums[1]);
    CHECK(strcmp(back.ranks[1].host, "node1") == 0 && back.ranks[1].partner == 0);
    CHECK(hcrt__manifest_find(&back, "layer0.weight") != NULL && hcrt__manifest_find(&back, "x") == NULL);
    hcrt__manifest_free(&back);

    /* Hostile edits of the valid text, each naming its field. */
    expect_bad(text, "\"format\": \"hcrt-checkpoint\"", "\"format\": \"other\"", "format");
    expect_bad(text, "\"version\": 1", "\"version\": 2", "version");
    expect_bad(text, "\"version\": 1", "\"version\": \"1\"", "version");
    expect_bad(text, "\"world_size\": 2", "\"world_size\": 0", "world_size");
    expect_bad(text, "\"world_size\": 2", "\"world_size\": 3", "ranks");
    expect_bad(text, "\"world_size\": 2", "\"world_size\": 99999999999", "world_size");
    expect_bad(text, "\"name\": \"layer0.weight\"", "\"name\": \"../../etc/passwd\"", "tensors[0].name");
    expect_bad(text, "\"name\": \"layer0.weight\"", "\"name\": \"a/b\"", "tensors[0].name");
    expect_bad(text, "\"name\": \"layer0.weight\"", "\"name\": \"\"", "tensors[0].name");
    expect_bad(text, "\"name\": \"layer0.weight\"", "\"name\": \"a\\u0000b\"", "not valid JSON");
    expect_bad(text, "\"dtype\": \"f32\"", "\"dtype\": \"f128\"", "tensors[0].dtype");
    expect_bad(text, "\"file\": \"rank-00001.bin\"", "\"file\": \"../rank-00001.bin\"", "file");
    expect_bad(text, "\"rank\": 1", "\"rank\": 5", "ranks[1].rank");
    expect_bad(text, "\"rank\": 1", "\"rank\": -1", "rank");
    expect_bad(text, "\"offset\": 4096", "\"offset\": 4097", "tensors[0].shards[0]");
    expect_bad(text, "\"offset\": 4096", "\"offset\": 18446744073709551615", "not valid JSON");
    expect_bad(text, "\"offset\": 4096", "\"offset\": 4611686018427387903", "tensors[0].shards[0]");
    expect_bad(text, "\"bytes\": 24,", "\"bytes\": 25,", "bytes");
    expect_bad(text, "\"row_offset\": 3", "\"row_offset\": 2", "tensors[0].shards");
    expect_bad(text, "\"row_offset\": 3", "\"row_offset\": 4", "tensors[0].shards");
    expect_bad(text, "\"chunk_size\": 4096", "\"chunk_size\": 0", "chunk_size");
    expect_bad(text, "\"0123456789abcdef\"", "\"0123456789abcdeg\"", "checksums[0]");
    expect_bad(text, "\"0123456789abcdef\"", "\"0123456789abcdef\", \"0123456789abcdef\"", "checksums");
    expect_bad(text, "\"shape\": [", "\"shape\": [1, 1, 1, 1, 1, 1, 1, 1, ", "shape");
    expect_bad(text, "\"shape\": [", "\"shape\": [281474976710657, ", "shape");
    expect_bad(text, "\"replicated\": false", "\"replicated\": 0", "replicated");
    expect_bad(text, "\"replicated\": false", "\"replicated\": true", "replicated");
    expect_bad(text, "\"metadata\": \"", "\"metadata\": \"!", "metadata");
    expect_bad(text, "\"partner\": 0", "\"partner\": 7", "partner");
    expect_bad(text, "{", "[", "not valid JSON");
    {
        hcrt__ckpt_manifest_t x;
        CHECK_STATUS(NULL, hcrt__manifest_parse("[1]", 3, "t", HCRT__MANIFEST_FULL, &x, err, sizeof(err)), HCRT_ERR_CORRUPT);
        CHECK(strstr(err, "top level") != NULL);
    }
    expect_bad(text, "\"tensors\": [", "\"tensors\": [{}, ", "tensors[0]");
    expect_bad(text, "\"step\": 42", "\"step\": 42, \"step\": 43", "not valid JSON");

    /* Every prefix and a flip of every byte: refused or accepted, never a crash. */
    size_t len = strlen(text);
    for (size_t cut = 0; cut < len; cut++) {
        hcrt_status_t st = hcrt__manifest_parse(text, cut, "prefix", HCRT__MANIFEST_FULL, &back, err, sizeof(err));
        CHECK_MSG(st == HCRT_ERR_CORRUPT, "prefix of %zu bytes accepted", cut);
    }
    char *copy = strdup(text);
    for (size_t i = 0; i < len; i++) {
        copy[i] ^= 0x04;
        if (hcrt__manifest_parse(copy, len, "flip", HCRT__MANIFEST_FULL, &back, err, sizeof(err)) == HCRT_OK)
            hcrt__manifest_free(&back);
        copy[i] ^= 0x04;
    }
    free(copy);
    free(text);

    /* Names. */
    CHECK(hcrt__ckpt_name_ok("model.layers.0.attn.q_proj.weight"));
    CHECK(!hcrt__ckpt_name_ok("..") && !hcrt__ckpt_name_ok("a/../b") && !hcrt__ckpt_name_ok("x/y"));
    CHECK(!hcrt__ckpt_name_ok("") && !hcrt__ckpt_name_ok("tab\there"));

    /* Base64 round trip of every length 0..64. */
    unsigned char raw[64], *dec;
    size_t dlen;
    for (int i = 0; i < 64; i++)
        raw[i] = (unsigned char)(i * 37 + 5);
    for (size_t n = 0; n <= 64; n++) {
        char *enc = hcrt__b64_encode(raw, n);
        CHECK(enc != NULL && hcrt__b64_decode(enc, &dec, &dlen) == HCRT_OK && dlen == n && memcmp(dec, raw, n) == 0);
        if (enc && dlen == n)
            free(dec);
        free(enc);
    }

    /* Partners: on another host whenever there is one; one copy per rank when hosts are alike. */
    {
        char hosts[64][16];
        int part[64];
        const char *layouts[] = {"aabb", "abab", "aaab", "xxx", "abcabcabc", "aabbbbbc"};
        for (size_t l = 0; l < sizeof(layouts) / sizeof(layouts[0]); l++) {
            int n = (int)strlen(layouts[l]);
            for (int r = 0; r < n; r++)
                snprintf(hosts[r], sizeof(hosts[r]), "host-%c", layouts[l][r]);
            const char *mode = hcrt__ckpt_partner_map(n, hosts[0], sizeof(hosts[0]), part);
            bool one_host = strcmp(layouts[l], "xxx") == 0;
            CHECK_MSG(mode && strcmp(mode, one_host ? "same-host" : "other-host") == 0, "%s: mode %s", layouts[l], mode);
            int held[64] = {0};
            for (int r = 0; r < n; r++) {
                CHECK_MSG(part[r] >= 0 && part[r] < n && part[r] != r, "%s: partner of %d is %d", layouts[l], r, part[r]);
                if (part[r] < 0 || part[r] >= n)
                    continue;
                held[part[r]]++;
                if (!one_host)
                    CHECK_MSG(strcmp(hosts[r], hosts[part[r]]) != 0, "%s: rank %d's partner %d on its host", layouts[l], r, part[r]);
            }
            if (l < 2 || l == 3 || l == 4)
                for (int r = 0; r < n; r++)
                    CHECK_MSG(held[r] == 1, "%s: rank %d keeps %d copies", layouts[l], r, held[r]);
        }
        CHECK(strcmp(hcrt__ckpt_partner_map(4, "a\0\0\0a\0\0\0b\0\0\0b\0\0", 4, part), "other-host") == 0);
        CHECK(part[0] == 2 && part[1] == 3 && part[2] == 0 && part[3] == 1);
        CHECK(strcmp(hcrt__ckpt_partner_map(1, "a", 2, part), "none") == 0 && part[0] == -1);
    }

    /* The AVX2 build of XXH3 gives libxxhash's values at every length and alignment. */
    {
        unsigned char buf[5000];
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = (unsigned char)(i * 131 + 7);
        for (size_t len = 0; len < 4096; len += len < 300 ? 1 : 97)
            for (size_t off = 0; off < 3; off++)
                CHECK_MSG(hcrt__ckpt_hash(buf + off, len) == hcrt__ckpt_hash_generic(buf + off, len),
                          "hash differs at length %zu offset %zu", len, off);
    }

    TEST_DONE();
}
