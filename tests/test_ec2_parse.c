/*
 * test_ec2_parse.c - the ec2 scaler's XML reply parsers (scalers/ec2/ec2_parse.c) on replies
 * shaped as the published EC2 (2016-11-15) and Auto Scaling (2011-01-01) APIs send them, hostile
 * documents (a DTD, external entities, an entity bomb, huge input, the wrong shapes), the state
 * mappings and error codes; and the plugin's option errors (ec2.so through the fake host, when
 * the build has made it).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec2_parse.h"
#include "fake_host.h"

static char why[256];

#define LEN(s) strlen(s)

/* ---- errors -------------------------------------------------------------------------------- */

START_TEST(error_documents)
{
    char code[SB_EC2_CODE_MAX], msg[SB_EC2_MESSAGE_MAX];
    const char *ec2 = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>"
                      "<Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
                      "</Message></Error></Errors><RequestID>a1b2</RequestID></Response>";
    ck_assert_int_eq(sb_ec2_parse_error(ec2, LEN(ec2), code, sizeof code, msg, sizeof msg), 1);
    ck_assert_str_eq(code, "RequestLimitExceeded");
    ck_assert_str_eq(msg, "Request limit exceeded.");
    const char *asg = "<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">\n"
                      "  <Error>\n    <Type>Sender</Type>\n    <Code>ScalingActivityInProgress"
                      "</Code>\n    <Message>Scaling activities are in\nprogress</Message>\n"
                      "  </Error>\n  <RequestId>x</RequestId>\n</ErrorResponse>\n";
    ck_assert_int_eq(sb_ec2_parse_error(asg, LEN(asg), code, sizeof code, msg, sizeof msg), 1);
    ck_assert_str_eq(code, "ScalingActivityInProgress");
    ck_assert_str_eq(msg, "Scaling activities are in?progress"); /* one line */
    /* A namespace prefix changes nothing. */
    const char *pfx = "<a:ErrorResponse xmlns:a=\"urn:x\"><a:Error><a:Code>Throttling</a:Code>"
                      "<a:Message>Rate exceeded</a:Message></a:Error></a:ErrorResponse>";
    ck_assert_int_eq(sb_ec2_parse_error(pfx, LEN(pfx), code, sizeof code, msg, sizeof msg), 1);
    ck_assert_str_eq(code, "Throttling");
    /* Not an error document; not XML at all. */
    const char *ok = "<SetDesiredCapacityResponse><ResponseMetadata/></SetDesiredCapacityResponse>";
    ck_assert_int_eq(sb_ec2_parse_error(ok, LEN(ok), code, sizeof code, msg, sizeof msg), 0);
    ck_assert_int_eq(
        sb_ec2_parse_error("<html><body>x &nbsp;", 20, code, sizeof code, msg, sizeof msg), -1);
    ck_assert_int_eq(sb_ec2_parse_error("", 0, code, sizeof code, msg, sizeof msg), -1);
    /* An error without a code is not one. */
    const char *nocode =
        "<Response><Errors><Error><Message>m</Message></Error></Errors></Response>";
    ck_assert_int_eq(sb_ec2_parse_error(nocode, LEN(nocode), code, sizeof code, msg, sizeof msg),
                     0);
    /* A code too long to hold is no code. */
    char big[400];
    snprintf(big, sizeof big,
             "<Response><Errors><Error><Code>%0200d</Code></Error></Errors>"
             "</Response>",
             7);
    ck_assert_int_eq(sb_ec2_parse_error(big, LEN(big), code, sizeof code, msg, sizeof msg), 0);
}
END_TEST

/* ---- hostile documents --------------------------------------------------------------------- */

START_TEST(hostile_documents)
{
    char code[SB_EC2_CODE_MAX], msg[SB_EC2_MESSAGE_MAX];
    /* An external entity: never loaded, and a document with a DTD is refused outright. */
    const char *xxe =
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
        "<Response><Errors><Error><Code>&x;</Code></Error></Errors></Response>";
    ck_assert_int_eq(sb_ec2_parse_error(xxe, LEN(xxe), code, sizeof code, msg, sizeof msg), -1);
    const char *bomb =
        "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;"
        "&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>"
        "<DescribeInstancesResponse><reservationSet><item><instancesSet><item><instanceId>&c;"
        "</instanceId></item></instancesSet></item></reservationSet></DescribeInstancesResponse>";
    sb_ec2_instance *is = NULL;
    size_t n = 9;
    ck_assert_int_eq(sb_ec2_parse_instances(bomb, LEN(bomb), "k", "v", &is, &n, why, sizeof why),
                     -EINVAL); /* libxml2 may refuse it itself: "not XML" */
    ck_assert(strcmp(why, "a DTD in the reply") == 0 || strcmp(why, "not XML") == 0);
    ck_assert_ptr_null(is);
    /* An internal DTD that is harmless on its face: refused all the same. */
    const char *dtd = "<?xml version=\"1.0\"?><!DOCTYPE SetDesiredCapacityResponse [<!ELEMENT "
                      "SetDesiredCapacityResponse ANY>]><SetDesiredCapacityResponse/>";
    ck_assert_int_eq(sb_ec2_parse_ok(dtd, LEN(dtd), "SetDesiredCapacityResponse", why, sizeof why),
                     -EINVAL);
    ck_assert_str_eq(why, "a DTD in the reply");
    ck_assert_uint_eq(n, 0);
    /* An external DTD by reference: refused too, never fetched. */
    const char *ext = "<?xml version=\"1.0\"?><!DOCTYPE r SYSTEM \"http://169.254.169.254/x.dtd\">"
                      "<SetDesiredCapacityResponse/>";
    ck_assert_int_eq(sb_ec2_parse_ok(ext, LEN(ext), "SetDesiredCapacityResponse", why, sizeof why),
                     -EINVAL);
    /* Too large. */
    size_t huge = SB_EC2_MAX_REPLY + 1;
    char *h = malloc(huge + 1);
    ck_assert_ptr_nonnull(h);
    memset(h, ' ', huge);
    memcpy(h, "<a>", 3);
    h[huge] = '\0';
    ck_assert_int_eq(sb_ec2_parse_ok(h, huge, "a", why, sizeof why), -EINVAL);
    ck_assert_str_eq(why, "the reply is too large");
    free(h);
    /* Truncated, binary. */
    const char *cut = "<DescribeInstancesResponse><reservationSet><item>";
    ck_assert_int_eq(sb_ec2_parse_instances(cut, LEN(cut), "k", "v", &is, &n, why, sizeof why),
                     -EINVAL);
    ck_assert_str_eq(why, "not XML");
    const char bin[] = {'<', 'a', '>', 0, 1, 2, '<', '/', 'a', '>'};
    ck_assert_int_eq(sb_ec2_parse_ok(bin, sizeof bin, "a", why, sizeof why), -EINVAL);
}
END_TEST

/* ---- EC2 ----------------------------------------------------------------------------------- */

static const char *describe_reply =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\n"
    "  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>\n"
    "  <reservationSet>\n"
    "    <item>\n"
    "      <reservationId>r-1234567890abcdef0</reservationId>\n"
    "      <ownerId>123456789012</ownerId>\n"
    "      <groupSet/>\n"
    "      <instancesSet>\n"
    "        <item>\n"
    "          <instanceId>i-1234567890abcdef0</instanceId>\n"
    "          <imageId>ami-bff32ccc</imageId>\n"
    "          <instanceState><code>16</code><name>running</name></instanceState>\n"
    "          <launchTime>2026-11-27T19:00:05.000Z</launchTime>\n"
    "          <privateIpAddress>10.0.0.12</privateIpAddress>\n"
    "          <clientToken>sb-abc</clientToken>\n"
    "          <tagSet><item><key>Name</key><value>web</value></item>\n"
    "                  <item><key>scalebus:scaler</key><value>fleet</value></item></tagSet>\n"
    "        </item>\n"
    "        <item>\n"
    "          <instanceId>i-0000000000000000b</instanceId>\n"
    "          <instanceState><code>0</code><name>pending</name></instanceState>\n"
    "          <launchTime>2026-11-27T19:01:00Z</launchTime>\n"
    "          <clientToken/>\n"
    "          <tagSet><item><key>scalebus:scaler</key><value>other</value></item></tagSet>\n"
    "        </item>\n"
    "      </instancesSet>\n"
    "    </item>\n"
    "    <item><reservationId>r-2</reservationId><instancesSet><item>"
    "<instanceId>i-0000000000000000c</instanceId><instanceState><code>80</code><name>stopped"
    "</name></instanceState></item></instancesSet></item>\n"
    "  </reservationSet>\n"
    "</DescribeInstancesResponse>\n";

START_TEST(describe_instances)
{
    sb_ec2_instance *is = NULL;
    size_t n = 0;
    ck_assert_int_eq(sb_ec2_parse_instances(describe_reply, LEN(describe_reply), "scalebus:scaler",
                                            "fleet", &is, &n, why, sizeof why),
                     0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(is[0].id, "i-1234567890abcdef0");
    ck_assert_str_eq(is[0].state, "running");
    ck_assert_str_eq(is[0].client_token, "sb-abc");
    ck_assert_str_eq(is[0].private_ip, "10.0.0.12");
    ck_assert_int_eq(is[0].launch_time, sb_ec2_parse_time("2026-11-27T19:00:05Z"));
    ck_assert_int_eq(is[0].tagged, 1);
    ck_assert_str_eq(is[1].state, "pending");
    ck_assert_str_eq(is[1].client_token, "");
    ck_assert_int_eq(is[1].tagged, 0); /* another scaler's */
    ck_assert_int_eq(is[2].tagged, 0); /* no tags at all */
    ck_assert_int_eq(is[2].launch_time, 0);
    free(is);
    /* None. */
    const char *none = "<DescribeInstancesResponse><requestId>x</requestId><reservationSet/>"
                       "</DescribeInstancesResponse>";
    ck_assert_int_eq(sb_ec2_parse_instances(none, LEN(none), "k", "v", &is, &n, why, sizeof why),
                     0);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(is);
    /* Wrong document, wrong shapes. */
    const char *other = "<RunInstancesResponse/>";
    ck_assert_int_eq(sb_ec2_parse_instances(other, LEN(other), "k", "v", &is, &n, why, sizeof why),
                     -EINVAL);
    ck_assert_str_eq(why, "not a DescribeInstancesResponse");
    const char *noid = "<DescribeInstancesResponse><reservationSet><item><instancesSet><item>"
                       "<instanceState><name>running</name></instanceState></item></instancesSet>"
                       "</item></reservationSet></DescribeInstancesResponse>";
    ck_assert_int_eq(sb_ec2_parse_instances(noid, LEN(noid), "k", "v", &is, &n, why, sizeof why),
                     -EINVAL);
    ck_assert_str_eq(why, "an instance without a valid instanceId");
    const char *nested = "<DescribeInstancesResponse><reservationSet><item><instancesSet><item>"
                         "<instanceId><b>i-1</b></instanceId></item></instancesSet></item>"
                         "</reservationSet></DescribeInstancesResponse>";
    ck_assert_int_eq(
        sb_ec2_parse_instances(nested, LEN(nested), "k", "v", &is, &n, why, sizeof why), -EINVAL);
    const char *nostate = "<DescribeInstancesResponse><reservationSet><item><instancesSet><item>"
                          "<instanceId>i-1</instanceId></item></instancesSet></item>"
                          "</reservationSet></DescribeInstancesResponse>";
    ck_assert_int_eq(
        sb_ec2_parse_instances(nostate, LEN(nostate), "k", "v", &is, &n, why, sizeof why), -EINVAL);
    ck_assert_str_eq(why, "instance i-1: no valid instanceState/name");
}
END_TEST

START_TEST(run_and_terminate)
{
    char id[SB_EC2_ID_MAX], token[SB_EC2_TOKEN_MAX];
    const char *run =
        "<RunInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
        "<requestId>r</requestId><reservationId>r-1</reservationId><ownerId>1</ownerId>"
        "<groupSet/><instancesSet><item><instanceId>i-0abc</instanceId><instanceState><code>0"
        "</code><name>pending</name></instanceState><clientToken>sb-1</clientToken></item>"
        "</instancesSet></RunInstancesResponse>";
    ck_assert_int_eq(
        sb_ec2_parse_run(run, LEN(run), id, sizeof id, token, sizeof token, why, sizeof why), 0);
    ck_assert_str_eq(id, "i-0abc");
    ck_assert_str_eq(token, "sb-1");
    const char *empty = "<RunInstancesResponse><instancesSet/></RunInstancesResponse>";
    ck_assert_int_eq(
        sb_ec2_parse_run(empty, LEN(empty), id, sizeof id, token, sizeof token, why, sizeof why),
        -EINVAL);
    ck_assert_str_eq(why, "no instancesSet/item/instanceId in the reply");
    const char *term =
        "<TerminateInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
        "<requestId>r</requestId><instancesSet><item><instanceId>i-0abc</instanceId>"
        "<currentState><code>32</code><name>shutting-down</name></currentState><previousState>"
        "<code>16</code><name>running</name></previousState></item></instancesSet>"
        "</TerminateInstancesResponse>";
    ck_assert_int_eq(sb_ec2_parse_terminate(term, LEN(term), "i-0abc", why, sizeof why), 0);
    ck_assert_int_eq(sb_ec2_parse_terminate(term, LEN(term), "i-0def", why, sizeof why), -EINVAL);
    ck_assert_str_eq(why, "the reply does not list i-0def");
    ck_assert_int_eq(sb_ec2_parse_terminate(run, LEN(run), "i-0abc", why, sizeof why), -EINVAL);
}
END_TEST

/* ---- Auto Scaling ---------------------------------------------------------------------------- */

static const char *group_reply =
    "<DescribeAutoScalingGroupsResponse "
    "xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">\n"
    "  <DescribeAutoScalingGroupsResult>\n"
    "    <AutoScalingGroups>\n"
    "      <member>\n"
    "        <AutoScalingGroupName>web</AutoScalingGroupName>\n"
    "        <MinSize>1</MinSize>\n"
    "        <MaxSize>10</MaxSize>\n"
    "        <DesiredCapacity>3</DesiredCapacity>\n"
    "        <DefaultCooldown>300</DefaultCooldown>\n"
    "        <Instances>\n"
    "          <member><InstanceId>i-1</InstanceId><LifecycleState>InService</LifecycleState>"
    "<HealthStatus>Healthy</HealthStatus></member>\n"
    "          <member><InstanceId>i-2</InstanceId><LifecycleState>Pending:Wait</LifecycleState>"
    "<HealthStatus>Healthy</HealthStatus></member>\n"
    "          <member><InstanceId>i-3</InstanceId><LifecycleState>InService</LifecycleState>"
    "<HealthStatus>Unhealthy</HealthStatus></member>\n"
    "        </Instances>\n"
    "      </member>\n"
    "    </AutoScalingGroups>\n"
    "  </DescribeAutoScalingGroupsResult>\n"
    "  <ResponseMetadata><RequestId>x</RequestId></ResponseMetadata>\n"
    "</DescribeAutoScalingGroupsResponse>\n";

START_TEST(describe_group)
{
    sb_asg_group g;
    ck_assert_int_eq(sb_asg_parse_group(group_reply, LEN(group_reply), "web", &g, why, sizeof why),
                     0);
    ck_assert_int_eq(g.found, 1);
    ck_assert_int_eq(g.min_size, 1);
    ck_assert_int_eq(g.max_size, 10);
    ck_assert_int_eq(g.desired, 3);
    ck_assert_uint_eq(g.ninstances, 3);
    ck_assert_str_eq(g.instances[1].id, "i-2");
    ck_assert_str_eq(g.instances[1].lifecycle, "Pending:Wait");
    ck_assert_str_eq(g.instances[2].health, "Unhealthy");
    sb_asg_group_clear(&g);
    /* Another name: not found (not an error). */
    ck_assert_int_eq(sb_asg_parse_group(group_reply, LEN(group_reply), "api", &g, why, sizeof why),
                     0);
    ck_assert_int_eq(g.found, 0);
    sb_asg_group_clear(&g);
    const char *none = "<DescribeAutoScalingGroupsResponse><DescribeAutoScalingGroupsResult>"
                       "<AutoScalingGroups/></DescribeAutoScalingGroupsResult>"
                       "</DescribeAutoScalingGroupsResponse>";
    ck_assert_int_eq(sb_asg_parse_group(none, LEN(none), "web", &g, why, sizeof why), 0);
    ck_assert_int_eq(g.found, 0);
    /* Bad counts, missing result. */
    const char *neg =
        "<DescribeAutoScalingGroupsResponse><DescribeAutoScalingGroupsResult>"
        "<AutoScalingGroups><member><AutoScalingGroupName>web</AutoScalingGroupName>"
        "<MinSize>-1</MinSize><MaxSize>2</MaxSize><DesiredCapacity>1</DesiredCapacity>"
        "</member></AutoScalingGroups></DescribeAutoScalingGroupsResult>"
        "</DescribeAutoScalingGroupsResponse>";
    ck_assert_int_eq(sb_asg_parse_group(neg, LEN(neg), "web", &g, why, sizeof why), -EINVAL);
    ck_assert_str_eq(why, "the group's MinSize is missing or not a count");
    const char *bare = "<DescribeAutoScalingGroupsResponse/>";
    ck_assert_int_eq(sb_asg_parse_group(bare, LEN(bare), "web", &g, why, sizeof why), -EINVAL);
    ck_assert_int_eq(sb_ec2_parse_ok("<SetDesiredCapacityResponse/>", 29,
                                     "SetDesiredCapacityResponse", why, sizeof why),
                     0);
    ck_assert_int_eq(
        sb_ec2_parse_ok(bare, LEN(bare), "SetDesiredCapacityResponse", why, sizeof why), -EINVAL);
}
END_TEST

/* ---- meanings ------------------------------------------------------------------------------- */

START_TEST(states_codes_times)
{
    ck_assert_int_eq(sb_ec2_instance_state("pending"), SB_MEMBER_STARTING);
    ck_assert_int_eq(sb_ec2_instance_state("running"), SB_MEMBER_READY);
    ck_assert_int_eq(sb_ec2_instance_state("stopping"), SB_MEMBER_FAILED);
    ck_assert_int_eq(sb_ec2_instance_state("stopped"), SB_MEMBER_FAILED);
    ck_assert_int_eq(sb_ec2_instance_state("shutting-down"), 0);
    ck_assert_int_eq(sb_ec2_instance_state("terminated"), 0);
    ck_assert_int_eq(sb_asg_instance_state("Pending", "Healthy"), SB_MEMBER_STARTING);
    ck_assert_int_eq(sb_asg_instance_state("Pending:Proceed", "Healthy"), SB_MEMBER_STARTING);
    ck_assert_int_eq(sb_asg_instance_state("Warmed:Running", ""), SB_MEMBER_STARTING);
    ck_assert_int_eq(sb_asg_instance_state("InService", "Healthy"), SB_MEMBER_READY);
    ck_assert_int_eq(sb_asg_instance_state("InService", "Unhealthy"), SB_MEMBER_FAILED);
    ck_assert_int_eq(sb_asg_instance_state("Terminating:Wait", "Healthy"), SB_MEMBER_STOPPING);
    ck_assert_int_eq(sb_asg_instance_state("Detaching", "Healthy"), SB_MEMBER_STOPPING);
    ck_assert_int_eq(sb_asg_instance_state("EnteringStandby", "Healthy"), SB_MEMBER_STOPPING);
    ck_assert_int_eq(sb_asg_instance_state("Terminated", "Healthy"), 0);
    ck_assert_int_eq(sb_asg_instance_state("Standby", "Healthy"), 0);
    ck_assert(sb_ec2_code_is_busy("ScalingActivityInProgress"));
    ck_assert(sb_ec2_code_is_busy("ResourceContention"));
    ck_assert(sb_ec2_code_is_busy("Throttling"));
    ck_assert(sb_ec2_code_is_busy("RequestLimitExceeded"));
    ck_assert(!sb_ec2_code_is_busy("UnauthorizedOperation"));
    ck_assert(sb_ec2_code_is_throttling("RequestLimitExceeded"));
    ck_assert(!sb_ec2_code_is_throttling("ScalingActivityInProgress"));
    ck_assert(sb_ec2_code_is_stale_keys("ExpiredToken"));
    ck_assert(sb_ec2_code_is_stale_keys("InvalidClientTokenId"));
    ck_assert(!sb_ec2_code_is_stale_keys("AuthFailure"));
    ck_assert_int_eq(sb_ec2_parse_time("1970-01-01T00:00:00Z"), 0);
    ck_assert_int_eq(sb_ec2_parse_time("2026-11-27T19:00:05.123Z"), 1795806005);
    ck_assert_int_eq(sb_ec2_parse_time("2026-11-27T20:00:05+01:00"), 1795806005);
    ck_assert_int_eq(sb_ec2_parse_time("2026-11-27T19:00:05"), 1795806005);
    ck_assert_int_eq(sb_ec2_parse_time("2026-13-27T19:00:05Z"), 0);
    ck_assert_int_eq(sb_ec2_parse_time("yesterday"), 0);
    ck_assert_int_eq(sb_ec2_parse_time("2026-11-27T19:00:05Zjunk"), 0);
}
END_TEST

/* ---- the plugin's options -------------------------------------------------------------------- */

static char err[512];

static int plugin_create(const char *opts)
{
    void *handle = NULL;
    const sb_plugin_descriptor *d = test_plugin_load_if_built("ec2", SB_KIND_SCALER, &handle);
    if (!d)
        return 0;
    char all[768];
    snprintf(all, sizeof all, "max: 3, metadata_url: \"http://127.0.0.1:1\", %s", opts);
    int rc = test_plugin_try_options(d, all, err, sizeof(err));
    test_plugin_unload(handle);
    return rc;
}

START_TEST(plugin_options)
{
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    void *handle = NULL;
    if (!test_plugin_load_if_built("ec2", SB_KIND_SCALER, &handle))
        return;
    test_plugin_unload(handle);
    ck_assert_int_eq(
        plugin_create("mode: asg, group: web, region: eu-west-1, honor_cooldown: true"), 0);
    ck_assert_int_eq(plugin_create("mode: instances, launch_template: lt-0abc123, region: "
                                   "eu-west-1, launch_template_version: \"3\", port: 8080"),
                     0);
    ck_assert_int_eq(plugin_create("mode: instances, launch_template: web-template, region: "
                                   "cn-north-1, endpoint: \"http://127.0.0.1:9\""),
                     0);
    ck_assert_int_eq(plugin_create("mode: spot, region: eu-west-1"), -EINVAL);
    ck_assert_str_eq(err, "mode: asg or instances, got 'spot'");
    ck_assert_int_eq(plugin_create("mode: asg, region: eu-west-1"), -EINVAL);
    ck_assert_str_eq(err, "group: required with mode asg (the Auto Scaling group's name)");
    ck_assert_int_eq(plugin_create("mode: instances, region: eu-west-1"), -EINVAL);
    ck_assert_str_eq(err, "launch_template: required with mode instances (an id lt-... or a name)");
    ck_assert_int_eq(plugin_create("mode: asg, group: web"), -EINVAL);
    ck_assert_str_eq(err, "region: required (or set AWS_REGION or AWS_DEFAULT_REGION)");
    setenv("AWS_DEFAULT_REGION", "us-east-2", 1);
    ck_assert_int_eq(plugin_create("mode: asg, group: web"), 0);
    setenv("AWS_REGION", "Not A Region", 1);
    ck_assert_int_eq(plugin_create("mode: asg, group: web"), -EINVAL);
    ck_assert_str_eq(err, "region (from AWS_REGION): 'Not A Region' is not a region name (like "
                          "eu-west-1)");
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    ck_assert_int_eq(plugin_create("mode: asg, group: web, region: eu-west-1, launch_template: x"),
                     -EINVAL);
    ck_assert_str_eq(err, "launch_template: only with mode instances (the group has its own)");
    ck_assert_int_eq(plugin_create("mode: instances, group: web, region: eu-west-1"), -EINVAL);
    ck_assert_str_eq(err, "group: only with mode asg");
    ck_assert_int_eq(plugin_create("mode: instances, launch_template: \"a b\", region: eu-west-1"),
                     -EINVAL);
    ck_assert_str_eq(err, "launch_template: 'a b' is neither an id (lt-...) nor a template name "
                          "(3-128 of A-Za-z0-9 ( ) . / _ -)");
    ck_assert_int_eq(plugin_create("mode: instances, launch_template: t1, region: eu-west-1, "
                                   "launch_template_version: newest"),
                     -EINVAL);
    ck_assert_str_eq(err, "launch_template_version: a version number, $Default or $Latest, got "
                          "'newest'");
    ck_assert_int_eq(plugin_create("mode: instances, launch_template: t1, region: eu-west-1, "
                                   "port: 0"),
                     -EINVAL);
    ck_assert_str_eq(err, "port: 1 to 65535, got 0");
    ck_assert_int_eq(plugin_create("mode: asg, group: web, region: eu-west-1, port: 80"), -EINVAL);
    ck_assert_str_eq(err, "port: only with mode instances");
    ck_assert_int_eq(plugin_create("mode: asg, group: web, region: eu-west-1, endpoint: "
                                   "\"ftp://x\""),
                     -EINVAL);
    ck_assert_int_eq(strncmp(err, "endpoint:", 9), 0);
    ck_assert_int_eq(plugin_create("mode: asg, group: web, region: eu-west-1, endpoint: "
                                   "\"https://key:secret@example.com\""),
                     -EINVAL);
    ck_assert_int_eq(strncmp(err, "endpoint:", 9), 0);
    ck_assert_ptr_null(strstr(err, "secret"));
    ck_assert_int_eq(plugin_create("mode: asg, group: web, region: eu-west-1, timeout: 10ms"),
                     -EINVAL);
    ck_assert_str_eq(err, "timeout: 100ms to 10m");
    ck_assert_int_eq(plugin_create("mode: asg, group: web, region: eu-west-1, on_stop: later"),
                     -EINVAL);
    ck_assert_str_eq(err, "on_stop: keep or stop, got 'later'");
}
END_TEST

static Suite *ec2_suite(void)
{
    Suite *s = suite_create("ec2_parse");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, error_documents);
    tcase_add_test(tc, hostile_documents);
    tcase_add_test(tc, describe_instances);
    tcase_add_test(tc, run_and_terminate);
    tcase_add_test(tc, describe_group);
    tcase_add_test(tc, states_codes_times);
    tcase_add_test(tc, plugin_options);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ec2_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
