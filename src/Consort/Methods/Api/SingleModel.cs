using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Api;

/// <summary>Options of <see cref="SingleModelMethod"/>: only the common generation settings.</summary>
public sealed class SingleModelOptions : MethodOptions;

/// <summary><c>single_model</c>: one model on its own, the baseline every collaboration is compared with.
/// It offers what its member offers (a nested single model keeps token access).</summary>
[CollaborationMethod("single_model", CollaborationLevel.Api, "One model answers alone (the baseline).",
    Aliases = ["single"], MinModels = 1, MaxModels = 1)]
public sealed class SingleModelMethod : CollaborationMethod<SingleModelOptions>
{
    /// <inheritdoc />
    protected override ModelDescriptor Describe(SingleModelOptions options, MethodPlan plan) => plan.Members[0] with { Name = plan.Name };

    /// <inheritdoc />
    protected override Task<ConsortModel> CreateAsync(MethodContext context, SingleModelOptions options, CancellationToken cancellationToken)
    {
        var member = context.Models[0];
        var descriptor = DescriptorOf(context, options);
        return Task.FromResult(new ConsortModel(descriptor, new Client(descriptor, member, options), member.Tokens, [member], Name));
    }

    private sealed class Client(ModelDescriptor descriptor, ConsortModel member, MethodOptions settings) : CollaborationChatClient(descriptor)
    {
        protected override Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct) =>
            CallAsync(member, messages, settings.Apply(options), trace, "answer", ct);

        // A single model streams token by token.
        public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
            [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            await foreach (var u in member.Chat.GetStreamingResponseAsync(messages, settings.Apply(options), cancellationToken).ConfigureAwait(false))
                yield return u;
        }
    }
}
