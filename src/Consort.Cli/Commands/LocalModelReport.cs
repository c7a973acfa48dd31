using System.Text.Json.Nodes;
using Consort.LlamaCpp;

namespace Consort.Cli.Commands;

/// <summary>What the llama.cpp models of a run used: KV cache size and batching counters (for the run summary).</summary>
internal static class LocalModelReport
{
    /// <summary>Every distinct llama.cpp token model in <paramref name="models"/> and their members.</summary>
    public static IReadOnlyList<LlamaTokenModel> Collect(IEnumerable<ConsortModel> models)
    {
        var found = new List<LlamaTokenModel>();
        void Walk(ConsortModel m)
        {
            if (m.Tokens is LlamaTokenModel t && !found.Contains(t)) found.Add(t);
            foreach (var member in m.Members) Walk(member);
        }
        foreach (var m in models) Walk(m);
        return found;
    }

    /// <summary>One line per model.</summary>
    public static string Line(LlamaTokenModel m)
    {
        var s = m.Statistics;
        double perCall = s.GroupCalls > 0 ? (double)s.SharedSequenceSteps / s.GroupCalls : 0;
        return $"model '{m.Descriptor.Name}': KV cache {m.KvCache}; {s.DecodeCalls} llama_decode calls, {s.GroupCalls} of them stepping "
            + $"{perCall:0.0} sequences on average (at most {s.MostSequencesInOneCall}), {s.ReusedPrefixTokens} prompt tokens reused from cached prefixes";
    }

    /// <summary>The same as JSON, by model name.</summary>
    public static JsonObject Json(IEnumerable<LlamaTokenModel> models)
    {
        var o = new JsonObject();
        foreach (var m in models)
        {
            var s = m.Statistics;
            o[m.Descriptor.Name] = new JsonObject
            {
                ["kv_cache_bytes"] = m.KvCache.Bytes, ["kv_cache"] = m.KvCache.ToString(), ["max_sequences"] = m.MaxSequences,
                ["decode_calls"] = s.DecodeCalls, ["shared_calls"] = s.GroupCalls, ["most_sequences_in_one_call"] = s.MostSequencesInOneCall,
                ["sequence_steps"] = s.SequenceSteps, ["reused_prefix_tokens"] = s.ReusedPrefixTokens,
            };
        }
        return o;
    }
}
