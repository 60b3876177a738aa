/*
 * ec2_parse.h - how the ec2 scaler reads the XML replies of the EC2 (2016-11-15) and Auto Scaling
 * (2011-01-01) Query APIs, with libxml2: error documents (both shapes), DescribeInstances,
 * RunInstances, TerminateInstances, DescribeAutoScalingGroups and SetDesiredCapacity; and what
 * an instance's state or a group member's lifecycle state means for the fleet. Pure: bytes in,
 * values out, no host, no I/O (tests/test_ec2_parse.c; the fuzzer calls each sb_ec2_parse_*).
 *
 * Every parser refuses a body over SB_EC2_MAX_REPLY and any document with a DTD; libxml2 is
 * never asked to load a DTD, substitute entities or reach the network. Elements are matched by
 * their local name whatever their namespace. Strings are bounded; control characters become '?'.
 */
#ifndef SCALEBUS_EC2_PARSE_H
#define SCALEBUS_EC2_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "scalebus/scaler.h"

#define SB_EC2_MAX_REPLY (4u << 20) /* bytes: larger replies are refused */
#define SB_EC2_MAX_MEMBERS 10000    /* instances read from one reply, at most */
#define SB_EC2_ID_MAX 64            /* an instance id ("i-0123456789abcdef0") and more */
#define SB_EC2_TOKEN_MAX 72         /* a client token: 64 ASCII characters at most */
#define SB_EC2_CODE_MAX 96
#define SB_EC2_MESSAGE_MAX 400

/* An error document, EC2's <Response><Errors><Error><Code/><Message/></Error></Errors> or Auto
 * Scaling's <ErrorResponse><Error><Type/><Code/><Message/></Error></ErrorResponse>. Returns 1 with
 * the first error's code and message, 0 when the body is well-formed XML but not an error
 * document, -1 when it is not XML (or too large). */
int sb_ec2_parse_error(const char *body, size_t len, char *code, size_t codelen, char *message,
                       size_t msglen);

/* One instance of a DescribeInstances reply (reservationSet/item/instancesSet/item). */
typedef struct sb_ec2_instance {
    char id[SB_EC2_ID_MAX];
    char state[32];                      /* instanceState/name: pending, running, ... */
    char client_token[SB_EC2_TOKEN_MAX]; /* "" when none */
    char private_ip[48];                 /* "" when none */
    int64_t launch_time;                 /* Unix seconds; 0 when absent or malformed */
    int tagged;                          /* carries the tag asked for (key = value) */
} sb_ec2_instance;

/* DescribeInstancesResponse: every instance, with tagged set for those whose tagSet holds
 * tag_key = tag_value. Returns 0 with a malloc'd array (NULL when none) in *out, or -EINVAL
 * (not that document, a field of the wrong shape) / -ENOMEM, with one line in why. */
int sb_ec2_parse_instances(const char *body, size_t len, const char *tag_key, const char *tag_value,
                           sb_ec2_instance **out, size_t *n, char *why, size_t whylen);

/* RunInstancesResponse: the first new instance's id (and its client token, "" when none).
 * Returns 0 or -EINVAL with why. */
int sb_ec2_parse_run(const char *body, size_t len, char *id, size_t idlen, char *token,
                     size_t tokenlen, char *why, size_t whylen);

/* TerminateInstancesResponse: 0 when instance id is in its instancesSet, else -EINVAL. */
int sb_ec2_parse_terminate(const char *body, size_t len, const char *id, char *why, size_t whylen);

/* One member of an Auto Scaling group. */
typedef struct sb_asg_instance {
    char id[SB_EC2_ID_MAX];
    char lifecycle[48]; /* LifecycleState: Pending, InService, Terminating, ... */
    char health[24];    /* HealthStatus: Healthy, Unhealthy */
} sb_asg_instance;

typedef struct sb_asg_group {
    int found; /* 0: the reply lists no group of that name */
    int64_t min_size, max_size, desired;
    sb_asg_instance *instances; /* malloc'd; NULL when none */
    size_t ninstances;
} sb_asg_group;

/* DescribeAutoScalingGroupsResponse: the group named name (found 0 when absent). Returns 0 or
 * -EINVAL / -ENOMEM with why. Free with sb_asg_group_clear. */
int sb_asg_parse_group(const char *body, size_t len, const char *name, sb_asg_group *out, char *why,
                       size_t whylen);
void sb_asg_group_clear(sb_asg_group *g);

/* A reply whose root element is `root` (e.g. "SetDesiredCapacityResponse"): 0, else -EINVAL. */
int sb_ec2_parse_ok(const char *body, size_t len, const char *root, char *why, size_t whylen);

/* "2026-11-27T19:00:00.000Z" (fraction and zone optional; Z or +hh:mm) in Unix seconds; 0 when
 * malformed. */
int64_t sb_ec2_parse_time(const char *text);

/* What the fleet makes of an EC2 instance state: pending -> starting, running -> ready,
 * stopping/stopped -> failed (drift: replaced); 0 for shutting-down, terminated and unknown
 * (omitted). */
sb_member_state sb_ec2_instance_state(const char *state);
/* ... and of an Auto Scaling member: Pending*, Warmed* -> starting; InService -> ready (failed
 * when HealthStatus is Unhealthy); Terminating*, Detaching, EnteringStandby -> stopping;
 * Terminated and others (Standby, Detached) -> 0 (omitted). */
sb_member_state sb_asg_instance_state(const char *lifecycle, const char *health);

/* The AWS error codes that mean "busy, retry later": Throttling, RequestLimitExceeded,
 * ScalingActivityInProgress, ResourceContention (and their close variants). */
int sb_ec2_code_is_busy(const char *code);
/* Throttling codes (busy, and the log says it backs off). */
int sb_ec2_code_is_throttling(const char *code);
/* Codes that mean the keys are stale (ExpiredToken, InvalidClientTokenId, RequestExpired...):
 * keys from the metadata service are fetched again. */
int sb_ec2_code_is_stale_keys(const char *code);

#endif
