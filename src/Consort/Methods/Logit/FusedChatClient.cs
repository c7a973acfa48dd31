using Consort.Decoding;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Logit;

/// <summary>Chat over a fused token model (any logit method); traces one entry per member (with its weight or
/// coefficient) plus the combined output, and marks results computed from top-k data as approximate.</summary>
internal sealed class FusedChatClient(FusedTokenModel fused, IChatPromptEncoder encoder, MethodOptions settings,
    IReadOnlyList<ConsortModel> models, int seed) : TokenChatClient(fused, encoder, seed)
{
    protected override ChatOptions? PrepareOptions(ChatOptions? options) => settings.Apply(options);

    protected override void OnCompleted(ChatResponse response, GenerationResult result)
    {
        if (Trace(result) is not { } trace) return;
        var usage = response.Usage;
        response.WithTrace(trace);
        // Keep the fused call's own token counts visible next to the members' totals.
        response.AdditionalProperties![ConsortKeys.FusedUsage] = usage;
        if (result.Sequence is FusedSequence { ApproximateSteps: > 0 }) response.AdditionalProperties[ConsortKeys.Approximate] = true;
    }

    // A stream reports what a response reports: the members' work as usage, the trace, the fused counts.
    protected override void OnStreamCompleted(ChatResponseUpdate final, GenerationResult result)
    {
        if (Trace(result) is not { } trace) return;
        var fusedUsage = final.Contents.OfType<UsageContent>().FirstOrDefault()?.Details;
        final.Contents = [.. final.Contents.Where(c => c is not UsageContent), new UsageContent(trace.ToUsage())];
        final.AdditionalProperties ??= new();
        final.AdditionalProperties[ConsortKeys.Trace] = trace.Entries;
        if (trace.Cost is { } c) final.AdditionalProperties[ConsortKeys.Cost] = c;
        final.AdditionalProperties[ConsortKeys.FusedUsage] = fusedUsage;
        if (result.Sequence is FusedSequence { ApproximateSteps: > 0 }) final.AdditionalProperties[ConsortKeys.Approximate] = true;
    }

    private CallTrace? Trace(GenerationResult result)
    {
        if (result.Sequence is not FusedSequence seq) return null;
        var trace = new CallTrace();
        for (int i = 0; i < models.Count; i++)
        {
            var s = seq.Stats[i];
            trace.Add(new TraceEntry
            {
                Model = models[i].Name,
                Role = "member",
                InputTokens = s.InputTokens,
                OutputTokens = s.OutputTokens,
                LatencyMs = s.Elapsed.TotalMilliseconds,
                Cost = models[i].Descriptor.CostOf(s.InputTokens, s.OutputTokens),
                Data = fused.Combiner.MemberData(i),
            });
        }
        trace.Add(new TraceEntry
        {
            Model = fused.Descriptor.Name,
            Role = "combined",
            Output = result.Text,
            LatencyMs = result.Elapsed.TotalMilliseconds,
            Data = seq.ApproximateSteps > 0
                // Top-k members: the distribution was renormalized over the union of their top-k sets at these steps.
                ? new() { ["tokens"] = result.Tokens.Count, ["approximate"] = true, ["approximate_steps"] = seq.ApproximateSteps }
                : new() { ["tokens"] = result.Tokens.Count },
        });
        return trace;
    }
}
