#ifndef HERALD_CJAVASCRIPTCORE_SHIM_H
#define HERALD_CJAVASCRIPTCORE_SHIM_H

#include <JavaScriptCore/JavaScript.h>
#include <stdbool.h>

// Exported by libjavascriptcoregtk but missing from the shipped headers (JSContextRefPrivate.h).
typedef bool (*JSShouldTerminateCallback)(JSContextRef ctx, void *context);

JS_EXPORT void JSContextGroupSetExecutionTimeLimit(JSContextGroupRef group, double limit,
                                                   JSShouldTerminateCallback callback, void *context);
JS_EXPORT void JSContextGroupClearExecutionTimeLimit(JSContextGroupRef group);

// Exported but missing from the shipped headers (JSBasePrivate.h): heapSize, heapCapacity,
// extraMemorySize, objectCount, ... of the context's heap.
JS_EXPORT JSObjectRef JSGetMemoryUsageStatistics(JSContextRef ctx);

#endif
