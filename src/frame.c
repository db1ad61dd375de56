/*
 * Gathered writes. lws_write() sends each message with its own send(),
 * and on the client side first reads /dev/urandom for the frame's mask:
 * two system calls per message. When several small messages wait (a
 * hundred tasks each sent a call, a handler answered a batch of
 * notifications...), they are framed here instead, back to back, and
 * handed to lws as one raw write: one send() for all of them.
 *
 * Client frames must be masked with keys a peer cannot predict (RFC 6455,
 * section 5.3). The keys come from the kernel's random source, as lws's
 * do, only read a kilobyte at a time into a pool instead of four bytes
 * per frame.
 *
 * Only for connections without extensions: a permessage-deflate frame
 * must go through lws, which compresses it (conn.c decides).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jrws.h"

struct jr_frames {
	unsigned char keys[1024]; /* unused mask keys, taken from the end */
	size_t keys_left;
	unsigned char buf[LWS_PRE + JR_GATHER];
};

jr_frames *jr_frames_new(void)
{
	return calloc(1, sizeof(jr_frames));
}

void jr_frames_free(jr_frames *f)
{
	free(f);
}

/* Where a gathered write starts (LWS_PRE bytes of headroom before it). */
unsigned char *jr_frames_start(jr_frames *f)
{
	return f->buf + LWS_PRE;
}

/* Four unpredictable bytes, or -1 when the kernel would not give any. */
static int jr_mask_key(struct lws_context *cx, jr_frames *f, unsigned char *key)
{
	if (f->keys_left < 4) {
		if (lws_get_random(cx, f->keys, sizeof f->keys) != sizeof f->keys)
			return -1;
		f->keys_left = sizeof f->keys;
	}
	f->keys_left -= 4;
	memcpy(key, f->keys + f->keys_left, 4);
	/* a key is used once: forget it */
	memset(f->keys + f->keys_left, 0, 4);
	return 0;
}

/* A final text frame's header for len bytes of payload; with key, the
 * masked form. Returns its size. */
static size_t jr_frame_header(unsigned char *h, size_t len, const unsigned char *key)
{
	unsigned char mask_bit = key ? 0x80 : 0;
	size_t n;
	int i;

	h[0] = 0x81; /* FIN, text */
	if (len < 126) {
		h[1] = (unsigned char)(mask_bit | len);
		n = 2;
	} else if (len <= 0xffff) {
		h[1] = mask_bit | 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		n = 4;
	} else {
		h[1] = mask_bit | 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((unsigned long long)len >> (56 - 8 * i));
		n = 10;
	}
	if (key) {
		memcpy(h + n, key, 4);
		n += 4;
	}
	return n;
}

/* Copies len bytes from src to dst, masked with key: eight bytes at a
 * time (the key repeats every four), then the rest. */
static void jr_copy_masked(unsigned char *dst, const unsigned char *src,
			   size_t len, const unsigned char *key)
{
	uint64_t key8, word;
	size_t i = 0;

	memcpy(&key8, key, 4);
	memcpy((unsigned char *)&key8 + 4, key, 4);
	for (; i + 8 <= len; i += 8) {
		memcpy(&word, src + i, 8);
		word ^= key8;
		memcpy(dst + i, &word, 8);
	}
	for (; i < len; i++)
		dst[i] = src[i] ^ key[i & 3];
}

/* Appends at p the frame of the len bytes at msg, masked when `masked`
 * (client side). Returns the end, or NULL when no mask key could be had.
 * p needs len + JR_FRAME_HEADER_MAX bytes. */
unsigned char *jr_frame_append(jr_frames *f, struct lws_context *cx,
			       unsigned char *p, const unsigned char *msg,
			       size_t len, int masked)
{
	unsigned char key[4];

	if (!masked) {
		p += jr_frame_header(p, len, NULL);
		memcpy(p, msg, len);
		return p + len;
	}
	if (jr_mask_key(cx, f, key))
		return NULL;
	p += jr_frame_header(p, len, key);
	jr_copy_masked(p, msg, len, key);
	return p + len;
}
