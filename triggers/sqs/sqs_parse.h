/*
 * sqs_parse.h - the SQS Query API's XML replies, read by a small strict parser (no libxml2): a
 * GetQueueAttributesResponse's <Attribute><Name>..</Name><Value>..</Value></Attribute> pairs, or
 * an ErrorResponse's <Error><Code>/<Message>. Pure: bytes in, fields out, no host.
 *
 * Strict and bounded: at most SB_SQS_MAX_REPLY bytes, 32 levels of elements, SB_SQS_MAX_ATTRS
 * attributes; tags must balance; only the five predefined entities and character references are
 * decoded; a DOCTYPE (and so any entity definition) or CDATA section is refused.
 */
#ifndef SCALEBUS_SQS_PARSE_H
#define SCALEBUS_SQS_PARSE_H

#include <stddef.h>

#define SB_SQS_MAX_REPLY (64 * 1024)
#define SB_SQS_MAX_ATTRS 32

typedef struct sb_sqs_attr {
    char name[128];
    char value[128];
} sb_sqs_attr;

typedef struct sb_sqs_reply {
    int is_error;      /* 1: an ErrorResponse (code and message set) */
    char code[128];    /* "AWS.SimpleQueueService.NonExistentQueue" */
    char message[256]; /* AWS's message, cut at 255 bytes */
    sb_sqs_attr attrs[SB_SQS_MAX_ATTRS];
    size_t nattrs;
} sb_sqs_reply;

/* Parse one reply. Returns 0 (a GetQueueAttributesResponse, or an ErrorResponse with is_error
 * set), or -EINVAL with one line in err ("line 3: </Value> closes <Name>"). */
int sb_sqs_parse(const char *text, size_t len, sb_sqs_reply *out, char *err, size_t errlen);

/* The value of attribute name in a parsed reply, or NULL. */
const char *sb_sqs_attr_value(const sb_sqs_reply *r, const char *name);

#endif
